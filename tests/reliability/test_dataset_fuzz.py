"""The dataset loaders under a property-based fuzzer: JSONL, JSON, CSV and Parquet files whose
rows are valid rows of every format, mutated (fields missing or of the wrong type, formats
mixed, empty rows, odd unicode), written with broken bytes (blank and truncated lines, invalid
UTF-8, a cut-off file, huge lines), then read, judged and prepared for every method by the real
``read_rows``, ``detect_format``, ``check_method``, ``prepare_rows`` and ``inspect_dataset``.

The property: each step succeeds, or raises DatasetError that names the file and whose every
problem line names the line or row (and the field when it is about one) or is one of the
few whole-file problems; ``inspect_dataset`` never raises. Nothing else ever escapes.

Examples per test: a few hundred in a normal run, 5,000 with TUNEDECK_LONG=1 (the suite's long
mode); each example is bounded by hypothesis' deadline.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.config import METHODS
from trainer.data import (
    FORMATS,
    DatasetError,
    check_method,
    detect_format,
    inspect_dataset,
    prepare_rows,
    read_rows,
)

LONG = os.environ.get("TUNEDECK_LONG") == "1"
EXAMPLES = 5000 if LONG else 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=3000,  # ms per example (one example reads a file and prepares it for 7 methods)
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_PROBLEM_CHARS = 1000  # a problem line is read by a person

# a problem that names where it is: "line 12, field "x": ...", "row 3: ...", "line 4, column 2:"
WHERE = re.compile(r'^(line|row) \d+(: |, column \d+: |, fields? "|, item )')
# problems about the whole file or the whole set of rows, which have no one line to name
WHOLE_FILE = [
    re.compile(p)
    for p in (
        r"^\.\.\. and \d+ more$",
        r"^the file is empty$",
        r"^holds no rows$",
        r"^the JSON object holds no list of rows$",
        r"^the JSON object holds several lists of rows \(.*\) and none is named '.*'$",
        r"^expected an array of objects, got .+$",
        r"^rows of different formats: (line|row)s? \d",
        r"^not a readable Parquet file \(.*\)$",
        r"^\w+ needs .+; this file is \"\w+\"$",
        r"^rlhf needs preference rows .+; this file is \"\w+\"$",
    )
]

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
VALID_ROWS: dict[str, dict[str, Any]] = {
    "messages": {"messages": CHAT},
    "sharegpt": {
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]
    },
    "alpaca": {"instruction": "Add 2 and 2", "input": "", "output": "4"},
    "text": {"text": "Some plain text for pre-training."},
    "prompt_completion": {"prompt": "The sky is", "completion": " blue."},
    "prompt": {"prompt": "Name a colour.", "reference": "red"},
    "preference": {"prompt": "Pick one.", "chosen": " This one.", "rejected": " That one."},
    "preference_implicit": {"chosen": "Q: hi A: good", "rejected": "Q: hi A: bad"},
    "preference_chat": {
        "chosen": CHAT,
        "rejected": [CHAT[0], {"role": "assistant", "content": "No"}],
    },
    "kto": {"prompt": "Say hi.", "completion": "Hi!", "label": True},
    "kto_csv": {"prompt": "Say hi.", "completion": "Hi!", "label": "false"},
    "prompt_completion_chat": {"prompt": [CHAT[0]], "completion": [CHAT[1]]},
}
FIELDS = sorted({k for row in VALID_ROWS.values() for k in row} | {"tool_calls", "from", "value"})


# ---------------------------------------------------------------------------- strategies

odd_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "   ", "\x00", "\ud800", "\u2028", "💥", "x" * 5000, "true", "null"]),
)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from([*FIELDS, "role", "content"]), odd_text), inner, max_size=3
        ),
    ),
    max_leaves=8,
)


def _mutate(draw: st.DrawFn, row: dict[str, Any]) -> Any:
    kind = draw(st.sampled_from(["keep", "keep", "drop", "set", "add", "turn", "other"]))
    row = dict(row)
    if kind == "drop" and row:
        row.pop(draw(st.sampled_from(sorted(row))))
    elif kind == "set" and row:
        row[draw(st.sampled_from(sorted(row)))] = draw(value)
    elif kind == "add":
        row[draw(st.one_of(st.sampled_from(FIELDS), odd_text))] = draw(value)
    elif kind == "turn":
        # break one chat turn: its role, its content, or the turn itself
        for key in ("messages", "conversations", "chosen", "prompt"):
            if isinstance(row.get(key), list) and row[key]:
                turns = list(row[key])
                i = draw(st.integers(min_value=0, max_value=len(turns) - 1))
                turn = turns[i]
                if isinstance(turn, dict):
                    turn = {**turn, draw(st.sampled_from([*sorted(turn), "role"])): draw(value)}
                turns[i] = draw(st.one_of(st.just(turn), value))
                row[key] = turns
                break
    elif kind == "other":
        return draw(value)  # not an object at all
    return row


@st.composite
def datasets(draw: st.DrawFn) -> list[Any]:
    """Rows of mostly one format (sometimes a mix), some of them mutated."""
    main = draw(st.sampled_from(sorted(VALID_ROWS)))
    count = draw(st.integers(min_value=0, max_value=8))
    rows: list[Any] = []
    for _ in range(count):
        fmt = draw(st.sampled_from([main, main, main, *VALID_ROWS]))
        row = VALID_ROWS[fmt]
        rows.append(_mutate(draw, row) if draw(st.booleans()) else dict(row))
    return rows


def _jsonl(rows: list[Any], draw: st.DrawFn) -> bytes:
    lines = [json.dumps(r, allow_nan=True) for r in rows]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        lines.insert(at, draw(st.sampled_from(["", "   ", "\r", "[1, 2]", '"text"', "{", "{}"])))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _json(rows: list[Any], draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["array", "object", "two_lists", "duplicate", "scalar"]))
    doc: Any
    if shape == "array":
        doc = rows
    elif shape == "object":
        doc = {"meta": {"v": 1}, "train": rows}
    elif shape == "two_lists":
        doc = {"train": rows, "test": rows[:1]}
    elif shape == "scalar":
        doc = draw(leaf)
    else:  # a key given twice: json keeps the last
        body = json.dumps(rows[:1], allow_nan=True), json.dumps(rows, allow_nan=True)
        return f'{{"train": {body[0]},\n "train": {body[1]}}}'.encode("utf-8", "surrogatepass")
    indent = draw(st.sampled_from([None, 1, 2]))
    return json.dumps(doc, indent=indent, allow_nan=True).encode("utf-8", "surrogatepass")


def _csv(rows: list[Any], draw: st.DrawFn) -> bytes:
    columns: list[str] = []
    for row in rows:
        for key in row if isinstance(row, dict) else ["value"]:
            if key not in columns:
                columns.append(str(key))
    if draw(st.booleans()) and columns:
        columns.append(draw(st.sampled_from(["", columns[0]])))  # a blank or repeated header
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        cells = row if isinstance(row, dict) else {"value": row}
        line = [_cell(cells.get(c, "")) for c in columns]
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            line = line[: draw(st.integers(min_value=0, max_value=len(line)))]  # short row
        writer.writerow(line)
    return out.getvalue().encode("utf-8", "surrogatepass")


def _cell(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, allow_nan=True)


def _parquet(rows: list[Any], draw: st.DrawFn) -> bytes:
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no stubs
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    records = [r for r in rows if isinstance(r, dict)]
    out = pa.BufferOutputStream()
    try:
        pq.write_table(pa.Table.from_pylist(records), out)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        # types Arrow cannot hold in one column or Parquet cannot store (mixed types, empty
        # structs): keep the rows as JSON text
        out = pa.BufferOutputStream()
        texts = [{"text": json.dumps(r, allow_nan=True)} for r in records]
        pq.write_table(pa.Table.from_pylist(texts), out)
    return bytes(out.getvalue().to_pybytes())


WRITERS = {"jsonl": _jsonl, "json": _json, "csv": _csv, "parquet": _parquet}


@st.composite
def dataset_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(extension, file bytes): rows written as one kind, then sometimes damaged."""
    rows = draw(datasets())
    kind = draw(st.sampled_from(sorted(WRITERS)))
    data = WRITERS[kind](rows, draw)
    damage = draw(
        st.sampled_from(
            ["none", "none", "none", "cut", "bad_utf8", "huge", "bytes", "deep", "long_int"]
        )
    )
    if damage in ("deep", "long_int") and kind in ("jsonl", "json"):
        # valid JSON the json module cannot read: nesting past its recursion limit, or an
        # integer past Python's 4,300-digit conversion limit
        n = draw(st.integers(min_value=1000, max_value=50_000))
        odd = b"[" * n + b"]" * n if damage == "deep" else b"9" * (4300 + n)
        row = b'{"text": ' + odd + b"}"
        data = data + b"\n" + row if kind == "jsonl" else b'[{"text": "a"},\n' + row + b"]"
    elif damage == "cut":
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    elif damage == "bad_utf8":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
            + data[at:]
        )
    elif damage == "huge":
        data += b'\n{"text": "' + b"y" * 2_000_000 + b'"}\n'
    elif damage == "bytes":
        data = draw(st.binary(max_size=300))
    return kind, data


# ----------------------------------------------------------------------------- the property


def check_error(err: DatasetError, source: str) -> None:
    assert err.source == source, f"the error does not name the file: {err.source!r}"
    assert err.problems, "a DatasetError with no problem lines"
    check_lines(err.problems)


def check_lines(problems: list[str]) -> None:
    for line in problems:
        line.encode("utf-8")  # printable: no lone surrogates in a message
        assert len(line) <= MAX_PROBLEM_CHARS, f"a problem line of {len(line)} characters"
        if WHERE.match(line):
            if "field" in line.split(":", 1)[0] or line.split(", ", 1)[-1].startswith("field"):
                assert re.match(r'^(line|row) \d+, fields? "', line), line
            continue
        assert any(p.match(line) for p in WHOLE_FILE), f"problem names no line or row: {line!r}"


def run_pipeline(path: Path, declared: str) -> None:
    source = str(path)
    try:
        rows = read_rows(source)
        fmt = detect_format(rows, source, declared=declared)
    except DatasetError as err:
        check_error(err, source)
        return
    assert fmt in FORMATS
    for method in METHODS:
        purposes = ("policy", "reward") if method == "rlhf" else ("train",)
        for purpose in purposes:
            try:
                if purpose != "reward":
                    check_method(fmt, method, has_reward_model=purpose == "policy", source=source)
                examples = prepare_rows(rows, fmt, method, purpose, source=source)
            except DatasetError as err:
                check_error(err, source)
                continue
            assert examples and all(isinstance(e, dict) for e in examples)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(file=dataset_files(), declared=st.sampled_from(["auto", "auto", "auto", *FORMATS]))
def test_datasets_load_or_name_the_line(
    data_dir: Path, file: tuple[str, bytes], declared: str
) -> None:
    kind, data = file
    path = data_dir / f"fuzz.{kind}"
    path.write_bytes(data)
    run_pipeline(path, declared)


@FUZZ
@given(file=dataset_files(), method=st.sampled_from(METHODS))
def test_inspect_dataset_never_raises(data_dir: Path, file: tuple[str, bytes], method: str) -> None:
    kind, data = file
    path = data_dir / f"inspect.{kind}"
    path.write_bytes(data)
    report = inspect_dataset(str(path), method)
    assert report.ok == (not report.problems)
    check_lines(report.problems)
    report.text().encode("utf-8")


# ------------------------------------------------------------ regression: the examples found


def _error(path: Path, text: str | bytes) -> DatasetError:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    with pytest.raises(DatasetError) as info:
        read_rows(str(path))
    return info.value


def test_a_row_nested_too_deeply_names_its_line(tmp_path: Path) -> None:
    # was: RecursionError from the json module
    err = _error(tmp_path / "d.jsonl", '{"text": "a"}\n{"text": ' + "[" * 100_000 + "}\n")
    assert err.problems[0].startswith("line 2, column ")
    assert "nested 100001 levels deep" in err.problems[0]  # the row, then the arrays


def test_a_json_array_nested_too_deeply_names_its_line(tmp_path: Path) -> None:
    err = _error(tmp_path / "d.json", "[\n" + "[" * 100_000)
    assert err.problems[0].startswith("line 2, column ")


def test_a_number_over_the_digit_limit_names_its_line(tmp_path: Path) -> None:
    # was: ValueError "Exceeds the limit (4300 digits) for integer string conversion"
    err = _error(tmp_path / "d.jsonl", '{"text": "a"}\n{"text": ' + "9" * 5000 + "}\n")
    assert err.problems == [
        "line 2, column 10: not valid JSON (a number with more than 4300 digits)"
    ]
    err = _error(tmp_path / "d.json", '[{"text": "a"},\n {"text": -' + "9" * 5000 + "}]")
    assert err.problems[0].startswith("line 2, column 11: ")


def test_a_json_key_given_twice_reads_the_last_list(tmp_path: Path) -> None:
    # was: JSONDecodeError while numbering the rows (it walked the first "train", a shorter one)
    path = tmp_path / "d.json"
    path.write_text('{"train": [{"text": "a"}],\n "train": [{"text": "b"},\n {"text": "c"}]}')
    rows = read_rows(str(path))
    assert [(r.line, r.data["text"]) for r in rows] == [(2, "b"), (3, "c")]
    path.write_text('{"train": 1, "train": [{"text": "a"}]}')
    assert read_rows(str(path))[0].data == {"text": "a"}


def test_a_broken_parquet_file_is_one_line_without_the_path(tmp_path: Path) -> None:
    # was: pyarrow's message, over two lines and with the temporary path in it
    path = tmp_path / "d.parquet"
    err = _error(path, b"PAR1" + b"\x0f" * 40 + b"PAR1")
    assert len(err.problems) == 1
    assert err.problems[0].startswith("not a readable Parquet file (")
    assert "\n" not in err.problems[0] and str(path) not in err.problems[0]


def test_a_huge_column_name_is_cut_short_in_the_problem(tmp_path: Path) -> None:
    # was: a 5,077-character problem line quoting the whole header name
    name = "x" * 5000
    err = _error(tmp_path / "d.csv", f"instruction,output,{name}\nHi\n")
    assert len(err.problems[0]) < 200
    assert err.problems[0].startswith("line 2: 1 values but the header has 3 columns (missing ")


def test_a_lone_surrogate_in_a_field_name_prints(tmp_path: Path) -> None:
    # was: the raw surrogate in the problem line, and UnicodeEncodeError when it was printed
    path = tmp_path / "d.jsonl"
    path.write_text('{"\\ud800": 1}\n')
    rows = read_rows(str(path))
    with pytest.raises(DatasetError) as info:
        detect_format(rows, str(path))
    assert info.value.problems == ['line 1: no known format (fields "\\ud800")']
    str(info.value).encode("utf-8")


def test_a_report_on_a_lone_surrogate_column_prints(tmp_path: Path) -> None:
    # was: the report's text quoted the column name raw: UnicodeEncodeError when printed
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "\\ud800": 1}\n')
    report = inspect_dataset(str(path), "cpt")
    assert report.ok
    assert "(columns: text, \\ud800)" in report.text()
    report.text().encode("utf-8")
