"""Presets: the built-in ones shipped in resources/presets/, and the user's own.

A preset is a (partial) run config in a JSON file, one file per preset. Built-in presets are
read-only; the user's live in ``<config folder>/presets`` and can be saved over and deleted.
A preset holds only the values it sets, so the schema's method defaults fill in the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "resources" / "presets"

_UNSAFE = re.compile(r"[^\w .-]+")


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    builtin: bool

    @property
    def label(self) -> str:
        return self.name if not self.builtin else f"{self.name} (built-in)"


def read_config_file(path: Path) -> dict[str, Any]:
    """A config or preset file as a dict; ConfigError naming the file and line when it is bad."""
    from trainer.config import read_config_file as read  # pydantic: not before first paint

    return read(path)


class PresetLibrary:
    def __init__(self, user_dir: Path, builtin_dir: Path = BUILTIN_DIR) -> None:
        self.user_dir = user_dir
        self.builtin_dir = builtin_dir

    def presets(self) -> list[Preset]:
        """Built-in presets first, then the user's, each sorted by name."""
        found = [Preset(p.stem, p, True) for p in sorted(self.builtin_dir.glob("*.json"))]
        if self.user_dir.is_dir():
            found += [Preset(p.stem, p, False) for p in sorted(self.user_dir.glob("*.json"))]
        return found

    def find(self, name: str, builtin: bool | None = None) -> Preset | None:
        for preset in self.presets():
            if preset.name == name and (builtin is None or preset.builtin == builtin):
                return preset
        return None

    def load(self, preset: Preset) -> dict[str, Any]:
        return read_config_file(preset.path)

    def save(self, name: str, data: dict[str, Any]) -> Preset:
        """Write a user preset (replacing one of the same name)."""
        from trainer.config import ConfigError

        clean = _UNSAFE.sub("_", name).strip(" .")
        if not clean:
            raise ConfigError(["preset name: use letters, digits, spaces, dots or dashes"])
        self.user_dir.mkdir(parents=True, exist_ok=True)
        path = self.user_dir / f"{clean}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # never leave a half-written preset behind
        return Preset(clean, path, False)

    def delete(self, preset: Preset) -> None:
        if preset.builtin:
            from trainer.config import ConfigError

            raise ConfigError([f"preset {preset.name}: built-in presets cannot be deleted"])
        preset.path.unlink(missing_ok=True)
