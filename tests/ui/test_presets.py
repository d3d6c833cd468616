"""Built-in presets and the user's own: list, save, load, delete, and the errors a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.ui.presets import BUILTIN_DIR, PresetLibrary
from trainer.config import ConfigError, parse_config


def test_builtin_presets_are_valid_configs() -> None:
    presets = PresetLibrary(Path("/nonexistent")).presets()
    assert presets, f"no presets in {BUILTIN_DIR}"
    for preset in presets:
        assert preset.builtin
        parse_config(json.loads(preset.path.read_text()), str(preset.path))


def test_user_presets_are_saved_listed_loaded_and_deleted(tmp_path: Path) -> None:
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    (builtin / "sft.json").write_text('{"method": "sft"}')
    library = PresetLibrary(tmp_path / "mine", builtin)
    saved = library.save("my dpo/v2", {"method": "dpo", "dpo": {"beta": 0.2}})
    assert saved.name == "my dpo_v2" and not saved.builtin
    assert [(p.name, p.builtin) for p in library.presets()] == [
        ("sft", True),
        ("my dpo_v2", False),
    ]
    assert library.load(saved) == {"method": "dpo", "dpo": {"beta": 0.2}}
    library.save("my dpo/v2", {"method": "orpo"})  # saving again replaces
    assert library.load(library.find("my dpo_v2")) == {"method": "orpo"}
    library.delete(saved)
    assert library.find("my dpo_v2") is None
    with pytest.raises(ConfigError, match="built-in presets cannot be deleted"):
        library.delete(library.find("sft"))


def test_a_broken_preset_file_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{\n  "method": "sft",\n  oops\n}')
    library = PresetLibrary(tmp_path / "mine", tmp_path)
    with pytest.raises(ConfigError) as err:
        library.load(library.find("bad"))
    assert "bad.json" in str(err.value) and "line 3" in str(err.value)
