"""Reading, upgrading and validating configs, with errors that name the field."""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trainer.config.fields import CONFIG_VERSION, ConfigError
from trainer.config.json_text import parse_json
from trainer.config.run_config import RunConfig


def _format_location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-after")]
    return ".".join(parts) if parts else "(config)"


def format_validation_error(err: ValidationError) -> list[str]:
    """One line per problem: the field path, what is wrong, what was given."""
    lines = []
    for e in err.errors():
        loc = _format_location(tuple(e["loc"]))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
            # cross-field rules name their own field first
            if ":" in msg.split(" ", 1)[0]:
                lines.append(msg)
                continue
        if e["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown field{_suggestion(tuple(e['loc']))}")
            continue
        given = e.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
        lines.append(f"{loc}: {msg}{shown}")
    return lines


def _suggestion(loc: tuple[Any, ...]) -> str:
    """``; did you mean 'x'?`` naming the closest field of the section ``loc`` is in, or the
    general hint when no field name is close."""
    model = _model_at(RunConfig, loc[:-1])
    if model is not None and isinstance(loc[-1], str):
        close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
        if close:
            return f"; did you mean {close[0]!r}?"
    return " (check the spelling; see `python -m trainer schema`)"


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model a location inside ``model`` points at (None when it is not one)."""
    for part in path:
        if isinstance(part, int):  # an item of a list: the list's own model was found already
            continue
        field = model.model_fields.get(str(part))
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):  # X | None, list[X], dict[str, X]
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older config up to CONFIG_VERSION. Version 1 is the first; nothing to do yet."""
    version = data.get("version", CONFIG_VERSION)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        # a list or an object is named, not quoted: the repr of a deep one overflows the stack
        given = (
            "a list"
            if isinstance(version, list)
            else "an object"
            if isinstance(version, dict)
            else repr(version)
        )
        raise ConfigError(
            [f"version: this Tunedeck reads config versions up to {CONFIG_VERSION} (got {given})"]
        )
    return data


def parse_config(data: dict[str, Any], source: str | None = None) -> RunConfig:
    """Validate a config dict, raising ConfigError with readable problems."""
    if not isinstance(data, dict):
        raise ConfigError(["(config): must be a JSON object"], source)
    data = upgrade_config(data)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err), source) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config (or preset) file as an upgraded dict, not yet validated; ConfigError naming the
    file and the line when it cannot be read or is not a JSON object."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError([f"cannot read the config file: {err.strerror}"], str(path)) from None
    try:
        data = parse_json(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(
            [f"line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"], str(path)
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(["(config): must be a JSON object"], str(path))
    try:
        return upgrade_config(data)
    except ConfigError as err:
        raise ConfigError(err.problems, str(path)) from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a config file."""
    return parse_config(read_config_file(path), str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of RunConfig (what `python -m trainer schema` prints)."""
    return RunConfig.model_json_schema()


def field_metadata(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The form metadata (basic, methods, widget) of one field."""
    extra = model.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}
