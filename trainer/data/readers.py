"""Read a dataset into rows: JSONL, JSON, CSV or Parquet, from a local path, a URL or the Hub.

Every row keeps its 1-based line (text files) or row number (Parquet, Hub), so that later checks
can say where a problem is. Light module: pyarrow and ``datasets`` are imported only when a
Parquet file or a Hub dataset is actually read.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib
import json
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config.json_text import parse_json
from trainer.data.formats import DatasetError, ProblemList, clipped

SUFFIX_KINDS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
CONTENT_TYPE_KINDS: dict[str, str] = {
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
KIND_NAMES = (
    "JSONL (.jsonl), JSON (.json), CSV (.csv), each optionally gzipped (.jsonl.gz), "
    "or Parquet (.parquet)"
)
# text files read as well gzipped; Parquet compresses its own columns
GZIP_KINDS = frozenset({"jsonl", "json", "csv"})
GZIP_MAGIC = b"\x1f\x8b"
URL_TIMEOUT_S = 60.0
# A Hub id is "owner/name" (or a bare canonical name such as "imdb" would be, but a bare word is
# far more likely a misspelt local file, so only the two-part form counts).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# resources/ lives beside trainer/ in a checkout and in an installed package alike
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Row:
    """One record and where it came from: ``line`` is 1-based; ``unit`` says what it counts."""

    line: int
    data: dict[str, Any]
    unit: str = "line"  # "line" in text files, "row" in Parquet files and Hub datasets

    @property
    def where(self) -> str:
        return f"{self.unit} {self.line}"


# ------------------------------------------------------------------------------ source kinds


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def looks_like_hub_id(source: str) -> bool:
    """True for "owner/name" that has no file extension we read."""
    return bool(_HUB_ID.match(source)) and file_kind(source) is None


def file_kind(name: str) -> str | None:
    """The kind a file name's extension says: ``rows.jsonl`` and ``rows.jsonl.gz`` are JSONL."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        kind = SUFFIX_KINDS.get(suffixes[-2])
        return kind if kind in GZIP_KINDS else None
    return SUFFIX_KINDS.get(suffixes[-1]) if suffixes else None


def resolve_local(source: str, base_dir: str | Path | None = None) -> Path:
    """``source`` as a path: relative ones under ``base_dir`` (else the current folder), and,
    when not found there, under the package root (where the demo datasets live)."""
    path = Path(source).expanduser()
    if path.is_absolute():
        return path
    first = Path(base_dir) / path if base_dir is not None else Path.cwd() / path
    if first.exists():
        return first
    fallback = PACKAGE_ROOT / path
    return fallback if fallback.exists() else first


def source_kind(source: str, base_dir: str | Path | None = None) -> str:
    """Which kind of source: "url", "local" or "hub" (a path that exists wins over a Hub id
    spelt the same)."""
    if is_url(source):
        return "url"
    if looks_like_hub_id(source) and not resolve_local(source, base_dir).exists():
        return "hub"
    return "local"


# ---------------------------------------------------------------------------------- entry


def read_rows(
    source: str,
    *,
    split: str = "train",
    subset: str | None = None,
    base_dir: str | Path | None = None,
) -> list[Row]:
    """Every row of ``source``; DatasetError (naming the line) for anything unreadable.

    ``split`` picks a Hub split, or the key of a JSON file that holds several lists of rows;
    ``subset`` is a Hub configuration name."""
    source = source.strip()
    if not source:
        raise DatasetError(["no dataset given"], "set dataset.path to a file, URL or Hub id")
    kind = source_kind(source, base_dir)
    if kind == "url":
        return _read_url(source, split=split)
    if kind == "hub":
        return _read_hub(source, split=split, subset=subset)
    path = resolve_local(source, base_dir)
    if not path.exists():
        start = Path(base_dir) if base_dir is not None else Path.cwd()
        raise DatasetError(
            ["file not found"],
            f"check the path (relative paths start at {start}); for a Hugging Face dataset "
            "give its id as owner/name",
            source,
        )
    return read_file(path, split=split, shown_as=source)


def read_file(
    path: Path, *, split: str = "train", shown_as: str | None = None, kind: str | None = None
) -> list[Row]:
    """Rows of one local file; ``kind`` overrides what the extension says."""
    shown = shown_as or str(path)
    if not path.exists():
        raise DatasetError(
            ["file not found"],
            "check the path",
            shown,
        )
    if path.is_dir():
        raise DatasetError(
            ["is a folder, not a file"], f"name one {KIND_NAMES} file inside it", shown
        )
    kind = kind or file_kind(path.name)
    if kind is None:
        raise DatasetError(
            [f'unknown file type "{path.suffix or "(no extension)"}"'],
            f"use {KIND_NAMES}; rename the file if its content is one of these",
            shown,
        )
    if path.stat().st_size == 0:
        raise DatasetError(["the file is empty"], "add rows, or pick another file", shown)
    try:
        rows = _parse_file(path, kind, shown, split)
    except OSError as err:
        raise DatasetError(
            [f"cannot read the file ({err.strerror or err})"], "check its permissions", shown
        ) from None
    if not rows:
        raise DatasetError(["holds no rows"], "add rows, or pick another file", shown)
    return rows


def _parse_file(path: Path, kind: str, shown: str, split: str) -> list[Row]:
    if kind == "parquet":
        rows = _read_parquet(path, shown)
    else:
        text = _read_text(path, shown)
        if kind == "jsonl":
            rows = _parse_jsonl(text, shown)
        elif kind == "json":
            rows = _parse_json(text, shown, split)
        else:
            rows = _parse_csv(text, shown)
    return rows


# ------------------------------------------------------------------------------ text files


def _read_text(path: Path, shown: str) -> str:
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):  # by its content: a download's name may not say so
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DatasetError(
                [f"a damaged gzip file ({err})"],
                "compress it again, or give it uncompressed",
                shown,
            ) from None
    try:
        return data.decode("utf-8-sig")  # a BOM from Windows editors is not part of row 1
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DatasetError(
            [f"line {line}: not UTF-8 text (byte 0x{data[err.start]:02x})"],
            "save the file as UTF-8",
            shown,
        ) from None


def _type_name(value: Any) -> str:
    return {
        list: "an array",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _parse_jsonl(text: str, shown: str) -> list[Row]:
    rows: list[Row] = []
    problems = ProblemList()
    loads = parse_json
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError as err:
            problems.add(f"line {number}, column {err.colno}: not valid JSON ({err.msg})")
            continue
        if not isinstance(value, dict):
            problems.add(f"line {number}: expected a JSON object {{...}}, got {_type_name(value)}")
            continue
        rows.append(Row(number, value))
    if problems:
        hint = "each line must hold one JSON object"
        if text.lstrip().startswith("["):
            hint = "this looks like one JSON array: name the file .json"
        raise DatasetError(problems.lines(), hint, shown)
    return rows


def _parse_json(text: str, shown: str, split: str) -> list[Row]:
    try:
        value = parse_json(text)
    except json.JSONDecodeError as err:
        hint = "fix the JSON syntax there"
        if err.msg == "Extra data":
            hint = "this looks like one JSON object per line: name the file .jsonl"
        raise DatasetError(
            [f"line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"], hint, shown
        ) from None
    if isinstance(value, list):
        return _rows_from_array(text, _skip_ws(text, 0), value, shown)
    if not isinstance(value, dict):
        raise DatasetError(
            [f"expected an array of objects, got {_type_name(value)}"],
            'write [{"field": ...}, ...]',
            shown,
        )
    key = _rows_key(value, shown, split)
    start = _value_start(text, key)
    return _rows_from_array(text, start, value[key], shown, key)


def _rows_key(value: dict[str, Any], shown: str, split: str) -> str:
    """The key of the one list of objects a JSON object holds (or ``split`` among several)."""
    lists = [k for k, v in value.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    if len(lists) == 1:
        return lists[0]
    if split in lists:
        return split
    if not lists:
        raise DatasetError(
            ["the JSON object holds no list of rows"],
            'write an array of objects, or {"train": [{...}, ...]}',
            shown,
        )
    names = ", ".join(f'"{clipped(k)}"' for k in lists[:5]) + (", ..." if len(lists) > 5 else "")
    raise DatasetError(
        [
            f"the JSON object holds several lists of rows ({names}) and none is named "
            f"{clipped(repr(split))}"
        ],
        "set dataset.split to the key to read",
        shown,
    )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _value_start(text: str, key: str) -> int:
    """Where the value of top-level ``key`` starts in a JSON object text (already valid).

    A key given twice keeps its last value (as ``json.loads`` does), so the last one counts."""
    decoder = json.JSONDecoder()
    found: int | None = None
    pos = _skip_ws(text, _skip_ws(text, 0) + 1)  # past "{"
    while text[pos] != "}":
        name, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ":"
        if name == key:
            found = pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    if found is None:
        raise AssertionError(f"key {key!r} not found")  # the caller found it in the parsed value
    return found


def _rows_from_array(
    text: str, start: int, items: list[Any], shown: str, key: str | None = None
) -> list[Row]:
    """Rows of the array that starts at ``start``, each numbered by the line it starts on."""
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    problems = ProblemList()
    pos, line, counted = _skip_ws(text, start + 1), 1, 0
    for index, item in enumerate(items):
        line += text.count("\n", counted, pos)
        counted = pos
        if not isinstance(item, dict):
            where = f"item {index + 1}" + (f' of "{key}"' if key else "")
            problems.add(f"line {line}: {where} is {_type_name(item)}, expected an object")
        else:
            rows.append(Row(line, item))
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    if problems:
        raise DatasetError(problems.lines(), "every item must be a JSON object {...}", shown)
    return rows


def _parse_csv(text: str, shown: str) -> list[Row]:
    # cells may hold whole documents; the default limit (128 KiB) would cut them off
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(["the file is empty"], "add a header row and rows", shown) from None
    names = [h.strip() for h in header]
    problems = ProblemList()
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        problems.add(f"line 1: column {blank[0]} of the header has no name")
    dupes = sorted({n for n in names if n and names.count(n) > 1})
    if dupes:
        problems.add(
            f'line 1: column name "{clipped(dupes[0])}" appears more than once in the header'
        )
    if problems:
        raise DatasetError(problems.lines(), "the first line must name every column once", shown)
    rows: list[Row] = []
    last_line = reader.line_num
    try:
        for values in reader:
            line, last_line = last_line + 1, reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if len(values) != len(names):
                missing = [clipped(repr(m)) for m in names[len(values) :]]
                if len(missing) > 5:
                    missing[5:] = [f"{len(missing) - 5} more"]
                detail = (
                    f" (missing {', '.join(missing)})"
                    if missing
                    else f" ({len(values) - len(names)} extra)"
                )
                problems.add(
                    f"line {line}: {len(values)} values but the header has "
                    f"{len(names)} columns{detail}"
                )
                continue
            rows.append(Row(line, dict(zip(names, values, strict=True))))
    except csv.Error as err:
        problems.add(f"line {reader.line_num}: not valid CSV ({err})")
    if problems:
        raise DatasetError(
            problems.lines(),
            "every row needs one value per header column; quote values holding commas",
            shown,
        )
    return rows


# -------------------------------------------------------------------------------- parquet


def _read_parquet(path: Path, shown: str) -> list[Row]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no stubs
    except ImportError:
        raise DatasetError(
            ["reading Parquet needs the pyarrow package"],
            "pip install pyarrow, or convert the file to JSONL",
            shown,
        ) from None
    try:
        records = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        # pyarrow's message spans lines and repeats the path: one line of it is enough
        said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        said = said.replace(f"'{path}'", "the file").replace(str(path), "the file")
        raise DatasetError(
            [f"not a readable Parquet file ({said})"], "check the file is complete", shown
        ) from None
    return [Row(i, r, "row") for i, r in enumerate(records, start=1)]


# ------------------------------------------------------------------------------------ URL


def url_kind(url: str, content_type: str | None, head: bytes) -> str | None:
    """The file kind of a download: from the URL's extension, else its Content-Type, else a
    look at its first bytes."""
    named = file_kind(urllib.parse.urlparse(url).path)
    if named is not None:
        return named
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in CONTENT_TYPE_KINDS:
        return CONTENT_TYPE_KINDS[mime]
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        first = stripped.split(b"\n", 1)[0]
        with contextlib.suppress(ValueError):
            json.loads(first)
            return "jsonl"
        return "json"
    return None


def _download(url: str, out: Any) -> str | None:
    """Copy ``url`` into the open file ``out``; its Content-Type."""
    request = urllib.request.Request(url, headers={"User-Agent": "tunedeck-trainer"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
            content_type: str | None = response.headers.get("Content-Type")
            return content_type
    except urllib.error.HTTPError as err:
        raise DatasetError(
            [f"download failed: HTTP {err.code} {err.reason}"],
            "check the URL opens in a browser; private files need a public or signed link",
            url,
        ) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DatasetError(
            [f"download failed: {reason}"],
            f"check the address and the network (gives up after {URL_TIMEOUT_S:g} s of silence)",
            url,
        ) from None


def _read_url(url: str, *, split: str) -> list[Row]:
    fd, name = tempfile.mkstemp(prefix="tunedeck-dataset-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            content_type = _download(url, out)
        with path.open("rb") as f:
            head = f.read(4096)
        kind = url_kind(url, content_type, head)
        if kind is None:
            raise DatasetError(
                [f"cannot tell the file type (Content-Type {content_type or 'missing'})"],
                f"use a URL that ends in the file's extension: {KIND_NAMES}",
                url,
            )
        return read_file(path, split=split, shown_as=url, kind=kind)
    finally:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ Hub


def _read_hub(dataset_id: str, *, split: str, subset: str | None) -> list[Row]:
    try:
        # importlib, not an import statement: the desktop imports this module (through
        # inspect.py) to check local files, and must never load `datasets`; inspect_dataset
        # only comes here when asked to (load_hub=True), which only the trainer process does
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise DatasetError(
            [
                f'"{dataset_id}" looks like a Hugging Face dataset id, and the datasets library '
                "is not installed here"
            ],
            "install the trainer's dependencies (pip install 'tunedeck[train]'), or give a "
            "local file",
            dataset_id,
        ) from None
    try:
        loaded = datasets.load_dataset(dataset_id, name=subset, split=split)
    except Exception as err:  # the library raises many unrelated types for "not reachable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "yes")
        raise DatasetError(
            [f"could not reach Hugging Face dataset {dataset_id!r}: {first}"],
            (
                "HF_HUB_OFFLINE is set, so only datasets already in the local cache load; "
                if offline
                else ""
            )
            + "check the id (owner/name), the split and subset, the network, and HF_TOKEN for "
            "private or gated datasets; or give a local file (relative paths start at "
            f"{Path.cwd()})",
            dataset_id,
        ) from None
    return [Row(i, dict(r), "row") for i, r in enumerate(_records(loaded), start=1)]


def _records(loaded: Any) -> Iterator[dict[str, Any]]:
    if hasattr(loaded, "to_list"):
        yield from loaded.to_list()
    else:  # an IterableDataset (streaming) has no to_list
        yield from loaded
