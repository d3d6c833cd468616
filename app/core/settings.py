"""The app's settings: a versioned JSON file in the config folder (never a secret in it).

``load_settings()`` always returns usable settings: a file that cannot be read is kept aside as
``settings.json.bak`` and defaults are used, with a warning that says so; a field with a bad
value falls back to its default alone (the original file is kept aside too); an older file is
upgraded; a file from a newer Tunedeck is read for what this version understands and its other
fields are kept on save. ``save_settings()`` writes atomically (temp file + ``os.replace``), so a
crash mid-write never leaves half a file.

Secrets live in the OS keyring (app.core.credentials); the loader refuses a file that carries one
of their names rather than silently keeping it on disk.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.core.trainer_python import detect_trainer_python
from trainer.events import ALERT_TYPES

SCHEMA_VERSION = 1
SETTINGS_FILE = "settings.json"
DEFAULT_RECEIVER_PORT = 8765
DEFAULT_STALL_MINUTES = 10
SECRET_FIELD_NAMES = frozenset({"runpod_api_key", "hf_token", "receiver_api_key"})


def settings_dir() -> Path:
    """Where settings.json lives: TUNEDECK_CONFIG_DIR, else the platform's config folder."""
    # app.core.paths, once present, owns this rule; read it from there when it exists so the
    # two can never disagree, and fall back to the same rule spelled here.
    try:
        from app.core import paths  # type: ignore[attr-defined, unused-ignore]

        config_dir = getattr(paths, "config_dir", None)
        if callable(config_dir):
            return Path(config_dir())
    except ImportError:
        pass
    override = os.environ.get("TUNEDECK_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("tunedeck", appauthor=False))


def default_notify() -> dict[str, bool]:
    return dict.fromkeys(ALERT_TYPES, True)


def receiver_host_warning(host: str) -> str | None:
    """A warning for a bind address other than loopback, or None for 127.0.0.1 and friends."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"The receiver will listen on {host}, so other machines can reach it. Only trainers "
        "holding the job's token can post, but the port is open on that network: use it only "
        "when a trainer elsewhere must push to this desktop, and only on a network you trust."
    )


class Settings(BaseModel):
    """Everything the user can set. Field descriptions are the Settings dialog's tooltips."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    schema_version: int = Field(default=SCHEMA_VERSION, description="settings file format")
    receiver_port: int = Field(
        default=DEFAULT_RECEIVER_PORT,
        ge=1024,
        le=65535,
        description="Port of the receiver that trainers send metrics and alerts to; if it is "
        "taken, a free port is used for that session.",
    )
    receiver_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the receiver listens on. 127.0.0.1 keeps it on this machine.",
    )
    notify: dict[str, bool] = Field(
        default_factory=default_notify,
        description="Which alert types show a desktop notification (all are listed in the "
        "job's alerts either way).",
    )
    stall_minutes: int = Field(
        default=DEFAULT_STALL_MINUTES,
        ge=0,
        le=24 * 60,
        description="Raise 'stalled' when a running job has sent nothing for this many "
        "minutes (0: never).",
    )
    trainer_python: str = Field(
        default_factory=detect_trainer_python,
        description="The Python interpreter that runs local training; it needs torch, "
        "transformers, trl, peft and datasets.",
    )
    first_run_done: bool = Field(default=False, description="The first-run demo has been offered.")

    @field_validator("notify")
    @classmethod
    def _every_alert_type(cls, value: dict[str, bool]) -> dict[str, bool]:
        # Types added in a later release default to on; unknown names from a newer file are kept.
        return {**default_notify(), **value}

    @field_validator("receiver_host")
    @classmethod
    def _an_address(cls, value: str) -> str:
        value = value.strip()
        if any(ch.isspace() for ch in value) or "/" in value:
            raise ValueError("an IP address or host name, such as 127.0.0.1")
        return value

    def notifies(self, alert_type: str) -> bool:
        return self.notify.get(alert_type, True)

    def receiver_host_warning(self) -> str | None:
        return receiver_host_warning(self.receiver_host)


@dataclass
class LoadedSettings:
    """Settings plus what the loader had to tell the user (shown once, e.g. in a status bar)."""

    settings: Settings
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None


# ---- versions ------------------------------------------------------------------------------

# MIGRATIONS[n] turns a version-n dict into a version-(n+1) dict. Version 0 is a file written
# by hand without a schema_version; its fields already have version 1's meaning.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: lambda data: {**data, "schema_version": 1},
}


def upgrade(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Bring a settings dict to SCHEMA_VERSION; a newer one is left as it is, with a warning."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return {**data, "schema_version": SCHEMA_VERSION}, [
            f"settings: schema_version {version!r} is not a version number; read as "
            f"version {SCHEMA_VERSION}."
        ]
    if version > SCHEMA_VERSION:
        return data, [
            f"settings: written by a newer Tunedeck (format {version}, this one knows "
            f"{SCHEMA_VERSION}); settings it does not know are kept as they are."
        ]
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["schema_version"]
    return data, []


# ---- load and save -------------------------------------------------------------------------


def load_settings(path: Path | None = None) -> LoadedSettings:
    """Read settings; never raises for a bad file (see the module docstring)."""
    path = path or settings_dir() / SETTINGS_FILE
    if not path.exists():
        return LoadedSettings(Settings(), [], path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        backup = _keep_aside(path)
        return LoadedSettings(
            Settings(),
            [
                f"settings: {path} could not be read ({exc}); it was kept as {backup.name} "
                "and the defaults are used."
            ],
            path,
        )
    warnings: list[str] = []
    leaked = sorted(SECRET_FIELD_NAMES & data.keys())
    if leaked:
        # A secret does not belong in a plain file. Extra fields are otherwise kept on save, so
        # drop these now: the next save leaves them out (and no backup copy keeps them).
        data = {k: v for k, v in data.items() if k not in SECRET_FIELD_NAMES}
        warnings.append(
            f"settings: {path} held {', '.join(leaked)}, which belong in the OS keyring; they "
            "were ignored and will be left out when settings are next saved. Enter them under "
            "Settings → Credentials."
        )
    data, upgrade_warnings = upgrade(data)
    warnings += upgrade_warnings
    settings, field_warnings = _validate_field_by_field(data)
    if field_warnings:
        # Keep the user's file as it was, then write the repaired one, so the warning is shown
        # once rather than at every start.
        backup = path.with_name(path.name + ".bak")
        with contextlib.suppress(OSError):
            shutil.copy2(path, backup)
            save_settings(settings, path)
        warnings += [f"{w} (the original file was kept as {backup.name})" for w in field_warnings]
    return LoadedSettings(settings, warnings, path)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write settings atomically; returns the file written."""
    path = path or settings_dir() / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    handle, temp_name = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return path


def _validate_field_by_field(data: dict[str, Any]) -> tuple[Settings, list[str]]:
    try:
        return Settings.model_validate(data), []
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        warnings = [
            f"settings: {error['loc'][0]} = {error.get('input')!r} is not allowed "
            f"({error['msg']}); the default is used."
            for error in exc.errors()
            if error["loc"]
        ]
    kept = {k: v for k, v in data.items() if k not in bad}
    try:
        return Settings.model_validate(kept), warnings
    except ValidationError as exc:  # cannot happen field by field; defaults are the safe answer
        return Settings(), [*warnings, f"settings: {exc}; the defaults are used."]


def _keep_aside(path: Path) -> Path:
    backup = path.with_name(path.name + ".bak")
    with contextlib.suppress(OSError):
        os.replace(path, backup)
    return backup
