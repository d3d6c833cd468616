"""Every shipped preset is a valid config whose dataset exists and fits its method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.config import METHODS, load_config

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "resources" / "presets").glob("*.json"))


def test_there_is_a_preset_per_method_and_a_demo() -> None:
    names = {p.stem for p in PRESETS}
    assert set(METHODS) | {"demo-sft"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_is_valid_and_its_dataset_fits(preset: Path, tmp_path: Path) -> None:
    from trainer.validation import validate_run

    data = json.loads(preset.read_text(encoding="utf-8"))  # plain JSON, no comments
    cfg = load_config(preset)
    if preset.stem in METHODS:
        assert cfg.method == preset.stem
    assert data["model"]["name_or_path"]
    # from a folder that is not the repository: paths resolve against the package root
    report = validate_run(cfg, base_dir=tmp_path)
    assert report.problems == [], report.problems
    assert report.rows > 0


def test_demo_preset_uses_the_builtin_model_and_demo_chat() -> None:
    cfg = load_config(REPO / "resources" / "presets" / "demo-sft.json")
    assert cfg.model.name_or_path == "builtin:tiny-llama"
    assert cfg.dataset.path == "resources/datasets/demo-chat.jsonl"
    # auto device: the same preset runs on a CPU and on a GPU
    assert cfg.runtime.device == "auto"
