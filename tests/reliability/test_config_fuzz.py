"""The config loader under a property-based fuzzer: valid configs mutated (wrong types, numbers
out of range, NaN/Infinity, huge integers, unknown keys, deep nesting, odd unicode, non-object
roots) and broken JSON text, through the real ``parse_config`` and ``load_config``.

The property: the loader returns a RunConfig (which saves and loads back to itself) or raises
ConfigError whose every problem line starts with a field path of the document or the schema,
"(config)" for the root, or "line N, column M: not valid JSON". Nothing else ever escapes.

Examples per test: a few hundred in a normal run, 5,000 with TUNEDECK_LONG=1 (the suite's long
mode); each example is bounded by hypothesis' deadline.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from trainer.config import (
    METHODS,
    ConfigError,
    RunConfig,
    load_config,
    parse_config,
    read_config_file,
)

LONG = os.environ.get("TUNEDECK_LONG") == "1"
EXAMPLES = 5000 if LONG else 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=2000,  # ms per example: a slow path in the loader fails the test
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOT_JSON = re.compile(r"^line \d+, column \d+: not valid JSON \(.+\)$")


# ----------------------------------------------------------------------------- the schema


def _schema_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = prefix + name
        paths.add(path)
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths |= _schema_paths(kind, path + ".")
    return paths


SCHEMA_PATHS = _schema_paths(RunConfig)

# valid starting points: each method's defaults, and a fuller one per method
SEEDS: list[dict[str, Any]] = [{}]
for _method in METHODS:
    SEEDS.append({"method": _method})
    SEEDS.append(
        json.loads(
            parse_config(
                {
                    "method": _method,
                    "name": "fuzz run",
                    "training": {"max_steps": 3, "per_device_train_batch_size": 4},
                    "runtime": {"device": "cpu", "max_runtime_minutes": 30},
                    "dataset": {"path": "data.jsonl", "max_samples": 10},
                }
            ).to_json()
        )
    )


# ---------------------------------------------------------------------------- strategies


def _nested(depth: int, leaf: Any, kind: str) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "\x00", "\ud800", "\udfff", "\u202e", "💥", "a" * 10_000, "{name}", "../..", "é"]
    ),
)
odd_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
)


def deep_values(max_depth: int) -> st.SearchStrategy[Any]:
    return st.builds(
        _nested,
        st.integers(min_value=50, max_value=max_depth),
        st.sampled_from([1, "x", None]),
        st.sampled_from(["list", "dict"]),
    )


json_leaf = st.one_of(st.none(), st.booleans(), odd_numbers, odd_text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in ``doc`` (dict keys and list indexes) down to 8 levels (the schema has
    3), the root included."""
    out = [prefix]
    if len(prefix) >= 8:
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:20]):
            out += _paths(v, (*prefix, i))
    return out


def _put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _put(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = _put(doc[head], rest, value)
    return copy


def _drop(doc: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(doc, dict):
            return {k: v for k, v in doc.items() if k != path[0]}
        return [v for i, v in enumerate(doc) if i != path[0]]
    return _put(doc, path[:-1], _drop(_get(doc, path[:-1]), path[-1:]))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated_configs(draw: st.DrawFn, max_depth: int = 3000) -> Any:
    """A valid config with one to three mutations: a value replaced, a key added or dropped,
    or a whole section (or the root) swapped for something else. One value in about ten is
    nested ``max_depth`` levels deep at most."""
    bad_value = st.one_of(*[json_value] * 9, deep_values(max_depth))
    doc: Any = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["replace", "replace", "add", "drop", "add_known"]))
        target = _get(doc, where)
        if action == "replace" or (action != "drop" and not isinstance(target, dict)):
            doc = _put(doc, where, draw(bad_value))
        elif action == "drop" and where:
            doc = _drop(doc, where)
        elif action == "add":
            doc = _put(doc, where, {**target, draw(odd_text): draw(bad_value)})
        elif action == "add_known":
            key = draw(st.sampled_from(sorted(SCHEMA_PATHS))).split(".")[-1]
            doc = _put(doc, where, {**target, key: draw(bad_value)})
    return doc


# ----------------------------------------------------------------------------- the property


def _doc_paths(doc: Any) -> set[str]:
    return {".".join(str(p) for p in path) for path in _paths(doc) if path}


def check_outcome(doc: Any, load: Any, source: Path | None = None) -> None:
    """``load()`` gives a RunConfig that round-trips, or a ConfigError whose every line names
    where the problem is (and that names ``source``, the file, when there is one); anything
    else fails the test."""
    try:
        cfg = load()
    except ConfigError as err:
        assert err.problems, "a ConfigError with no problem lines"
        if source is not None:
            assert err.source == str(source), f"the error does not name the file: {err.source}"
        known = SCHEMA_PATHS | (_doc_paths(doc) if doc is not None else set())
        for line in err.problems:
            line.encode("utf-8")  # printable: no lone surrogates in a message
            if NOT_JSON.match(line) or line.startswith("(config): "):
                continue
            head = line.split(": ", 1)[0]
            assert head in known, f"problem line names no field: {line!r}"
        return
    assert isinstance(cfg, RunConfig)
    again = parse_config(json.loads(cfg.to_json()))
    assert again == cfg, "a config that does not load back as itself once saved"


@FUZZ
@given(mutated_configs())
def test_parse_config_names_the_field_or_accepts(doc: Any) -> None:
    check_outcome(doc, lambda: parse_config(doc))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file the examples of a test take turns to write (no folder per example)."""
    return tmp_path_factory.mktemp("fuzz") / "run.json"


@FUZZ
@given(doc=mutated_configs(max_depth=500))  # deeper does not fit json.dumps' own recursion
def test_config_files_name_the_field_or_accept(config_file: Path, doc: Any) -> None:
    # NaN and Infinity become the literals Python's JSON reader accepts; a lone surrogate
    # becomes the \ud800 escape
    config_file.write_text(json.dumps(doc, allow_nan=True), encoding="utf-8")
    check_outcome(doc, lambda: load_config(config_file), config_file)


# ------------------------------------------------------------------------- broken JSON text


def _valid_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


# Texts that escape json.loads with other errors than JSONDecodeError (no position): bytes that
# are not UTF-8, nesting past the recursion limit, an integer over 4,300 digits.
ESCAPING_KINDS = ["bad_utf8", "deep", "long_int"]


@st.composite
def broken_texts(draw: st.DrawFn) -> bytes:
    """A valid config file's text, cut short, with characters inserted, dropped or swapped, a
    non-object root, or nothing like JSON at all."""
    text = _valid_text(draw(st.sampled_from(SEEDS)))
    kinds = ["truncate", "insert", "delete", "root", "noise", "bom"]
    kind = draw(st.sampled_from(kinds + ESCAPING_KINDS))
    if kind in ESCAPING_KINDS:
        return _escaping_text(kind, text, draw(st.integers(min_value=0, max_value=len(text))))
    return _broken_text(draw, kind, text).encode("utf-8", "surrogatepass")


def _escaping_text(kind: str, text: str, at: int) -> bytes:
    raw = text.encode("utf-8")
    if kind == "bad_utf8":
        return raw[:at] + b"\xff" + raw[at:]
    if kind == "deep":
        return b'{"training": ' + b"[" * 100_000 + b"}"
    return b'{"version": ' + b"9" * 5000 + b"}"


def _broken_text(draw: st.DrawFn, kind: str, text: str) -> str:
    if kind == "truncate":
        return text[: draw(st.integers(min_value=0, max_value=len(text)))]
    if kind == "insert":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        junk = draw(st.sampled_from([",", "}", "]", '"', ":", "//", "NaN", "\n", "'", "\\", "tru"]))
        return text[:at] + junk + text[at:]
    if kind == "delete":
        at = draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))
        return text[:at] + text[at + 1 :]
    if kind == "root":
        return json.dumps(draw(st.one_of(json_leaf, st.lists(json_leaf, max_size=3))))
    if kind == "bom":
        return "\ufeff" + text
    return draw(st.text(max_size=200))


@FUZZ
@given(data=broken_texts())
def test_broken_config_text_says_where(config_file: Path, data: bytes) -> None:
    config_file.write_bytes(data)
    try:
        doc = json.loads(data)  # what the loader saw, when it is JSON after all
    except (ValueError, RecursionError):
        doc = None
    check_outcome(doc, lambda: load_config(config_file), config_file)


# ------------------------------------------------------------ regression: the examples found


def test_method_of_the_wrong_type_is_a_field_error() -> None:
    # was: TypeError (unhashable type: 'list') from the method-defaults validator
    wrong: list[Any] = [[], {}]
    for method in wrong:
        with pytest.raises(ConfigError) as err:
            parse_config({"method": method})
        assert err.value.problems[0].startswith("method: ")


def test_infinity_is_refused_by_name() -> None:
    # was: accepted, and saved as null, so the saved config no longer loaded
    with pytest.raises(ConfigError) as err:
        parse_config({"training": {"num_train_epochs": math.inf}})
    assert err.value.problems == [
        "training.num_train_epochs: Input should be a finite number (got inf)"
    ]


def test_infinity_in_a_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"runtime": {"max_runtime_minutes": Infinity}}')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems[0].startswith("runtime.max_runtime_minutes: ")
    assert err.value.source == str(path)


def test_nan_is_refused_as_not_finite() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"training": {"learning_rate": math.nan}})
    assert "finite" in err.value.problems[0]


def test_a_config_file_is_read_with_its_problems_named(tmp_path: Path) -> None:
    # the happy path through the same reader the fuzzer uses, for contrast
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"method": "dpo", "training": {"learning_rate": 2}}))
    assert read_config_file(path)["method"] == "dpo"
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems[0].startswith("training.learning_rate: ")


@pytest.mark.parametrize("kind", ESCAPING_KINDS)
def test_config_text_that_escapes_the_reader(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(_escaping_text(kind, _valid_text({"method": "dpo"}), 5))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert NOT_JSON.match(err.value.problems[0]), err.value.problems
    assert err.value.source == str(path)


def test_a_deeply_nested_unknown_field_is_named() -> None:
    # was: RecursionError from copy.deepcopy in the method-defaults validator
    with pytest.raises(ConfigError) as err:
        parse_config({"method": "dpo", "extra": _nested(3000, 1, "dict")})
    assert err.value.problems[0].startswith("extra: unknown field")


def test_a_deeply_nested_version_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"version": _nested(3000, 1, "list")})
    assert err.value.problems[0].startswith("version: ")


def test_a_bad_version_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"version": 99}')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.source == str(path)
