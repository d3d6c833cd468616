"""What the run form shows, read from the config schema (no Qt here, so it is easy to test).

Every field of ``trainer.config.RunConfig`` becomes a :class:`FieldSpec`: its dotted path, the
label (the schema's ``title`` or the field name made readable), the tooltip (``description``), the
kind of editor it needs (from the annotation and the ``widget`` hint), its numeric range (from
``ge``/``gt``/``le``/``lt``), its choices (from a ``Literal``), and the form metadata from
``json_schema_extra`` (``basic``, ``methods``). Nothing is spelled out twice by hand: a new field
in the schema appears in the form without a change here.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from trainer.config import RunConfig, field_metadata

# Fields the form never shows: the schema version is the file's business, not the user's; the
# method has its own picker at the top of the form.
HIDDEN_FIELDS = frozenset({"version", "method"})

EditorKind = Literal[
    "bool",
    "choice",
    "int",
    "float",
    "text",
    "multiline",
    "list",
    "path",
    "file",
    "dataset",
    "model",
]

# Qt's spin boxes hold a C int.
INT_MIN = -(2**31) + 1
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class FieldSpec:
    path: str  # "training.learning_rate"
    name: str
    label: str
    tooltip: str
    kind: EditorKind
    optional: bool
    default: Any
    basic: bool
    methods: tuple[str, ...] | None
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def used_by(self, method: str) -> bool:
        return self.methods is None or method in self.methods


@dataclass(frozen=True)
class SectionSpec:
    name: str  # "" for the top-level fields of RunConfig
    title: str
    tooltip: str
    methods: tuple[str, ...] | None
    fields: tuple[FieldSpec, ...]

    def used_by(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def readable(name: str) -> str:
    """``per_device_eval_batch_size`` -> ``Per device eval batch size``."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(annotation)):
            return args[0], True
    return annotation, False


def _range(info: FieldInfo, is_int: bool) -> tuple[float | None, float | None]:
    low: float | None = None
    high: float | None = None
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            low = float(m.ge)  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.Gt):
            low = float(m.gt) + 1 if is_int else float(m.gt)  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.Le):
            high = float(m.le)  # type: ignore[arg-type]
        elif isinstance(m, annotated_types.Lt):
            high = float(m.lt) - 1 if is_int else float(m.lt)  # type: ignore[arg-type]
    return low, high


def _kind(annotation: Any, widget: str | None) -> tuple[EditorKind, tuple[Any, ...]]:
    if get_origin(annotation) is Literal:
        return "choice", get_args(annotation)
    if widget in ("multiline", "path", "file", "dataset", "model"):
        return widget, ()  # type: ignore[return-value]
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if get_origin(annotation) is list:
        return "list", ()
    return "text", ()


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return info.default


def field_spec(path: str, name: str, info: FieldInfo, extra: dict[str, Any]) -> FieldSpec:
    annotation, optional = _strip_optional(info.annotation)
    kind, choices = _kind(annotation, extra.get("widget"))
    low, high = _range(info, kind == "int")
    methods = extra.get("methods")
    return FieldSpec(
        path=path,
        name=name,
        label=info.title or readable(name),
        tooltip=info.description or "",
        kind=kind,
        optional=optional,
        default=_default(info),
        basic=bool(extra.get("basic", False)),
        methods=tuple(methods) if methods is not None else None,
        choices=choices,
        minimum=low,
        maximum=high,
    )


def walk_schema(model: type[BaseModel] = RunConfig) -> list[SectionSpec]:
    """The sections of the form, in schema order; the top-level leaf fields come first."""
    top: list[FieldSpec] = []
    sections: list[SectionSpec] = []
    for name, info in model.model_fields.items():
        if name in HIDDEN_FIELDS:
            continue
        extra = field_metadata(model, name)
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            fields = tuple(
                field_spec(f"{name}.{fname}", fname, finfo, field_metadata(sub, fname))
                for fname, finfo in sub.model_fields.items()
            )
            methods = extra.get("methods")
            description = (info.description or "").rstrip(".")
            sections.append(
                SectionSpec(
                    name=name,
                    title=info.title or description or readable(name),
                    tooltip=sub.__doc__ or info.description or "",
                    methods=tuple(methods) if methods is not None else None,
                    fields=fields,
                )
            )
        else:
            top.append(field_spec(name, name, info, extra))
    head = SectionSpec(name="", title="Run", tooltip="", methods=None, fields=tuple(top))
    return [head, *sections]


def all_fields(sections: list[SectionSpec]) -> dict[str, FieldSpec]:
    return {f.path: f for s in sections for f in s.fields}


def get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        node = node[part]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def flatten(data: dict[str, Any], known: set[str], prefix: str = "") -> dict[str, Any]:
    """Leaf values of a nested config dict whose dotted path is a form field."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if path in known:
            out[path] = value
        elif isinstance(value, dict):
            out.update(flatten(value, known, prefix=f"{path}."))
    return out


def problem_path(problem: str, known: set[str]) -> str | None:
    """The form field a ``format_validation_error`` line is about (longest known prefix)."""
    head = problem.split(": ", 1)[0].strip()
    parts = head.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def problem_message(problem: str) -> str:
    """The part of a problem line after its field path."""
    head, sep, rest = problem.partition(": ")
    return rest if sep else head
