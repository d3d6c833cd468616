"""Reading datasets: every file kind, every source kind, and broken files that name the line."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.data.formats import DatasetError
from trainer.data.readers import Row, read_rows, source_kind, url_kind

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def error_of(source: str | Path, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        read_rows(str(source), **kwargs)  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------------- files


def test_jsonl_keeps_line_numbers_and_skips_blank_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '{"text": "a"}\n\n   \n{"text": "b"}\n')
    rows = read_rows(str(f))
    assert rows == [Row(1, {"text": "a"}), Row(4, {"text": "b"})]
    assert rows[1].where == "line 4"


def test_jsonl_with_a_byte_order_mark_reads_its_first_row(tmp_path: Path) -> None:
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"text": "a"}\n')
    assert read_rows(str(f))[0].data == {"text": "a"}


def test_json_array_rows_carry_the_line_they_start_on(tmp_path: Path) -> None:
    f = write(tmp_path / "d.json", '[\n  {"text": "a"},\n\n  {"text":\n "b"}\n]\n')
    rows = read_rows(str(f))
    assert [(r.line, r.data["text"]) for r in rows] == [(2, "a"), (4, "b")]


def test_json_object_with_one_list_of_rows(tmp_path: Path) -> None:
    data = {"version": 2, "meta": {"x": [1]}, "rows": [{"text": "a"}, {"text": "b"}]}
    f = write(tmp_path / "d.json", json.dumps(data, indent=1))
    rows = read_rows(str(f))
    assert [r.data["text"] for r in rows] == ["a", "b"]
    # the line of each row inside the indented object, not 1
    text = f.read_text().splitlines()
    assert '"text": "a"' in text[rows[0].line] or '"text": "a"' in text[rows[0].line - 1]


def test_json_object_with_several_lists_needs_the_split_named(tmp_path: Path) -> None:
    data = {"train": [{"text": "a"}], "test": [{"text": "b"}, {"text": "c"}]}
    f = write(tmp_path / "d.json", json.dumps(data))
    assert [r.data["text"] for r in read_rows(str(f))] == ["a"]
    assert [r.data["text"] for r in read_rows(str(f), split="test")] == ["b", "c"]
    err = error_of(f, split="validation")
    assert '"train", "test"' in err.problems[0] and "dataset.split" in err.hint


def test_csv_values_are_strings_and_lines_count_the_header(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", 'prompt,completion\nHi,"Hello, you"\n\n"multi\nline",x\nq,a\n')
    rows = read_rows(str(f))
    assert [r.line for r in rows] == [2, 4, 6]
    assert rows[0].data == {"prompt": "Hi", "completion": "Hello, you"}
    assert rows[1].data["prompt"] == "multi\nline"


def test_parquet_rows_are_numbered_as_rows(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    f = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([CHAT, CHAT]), f)
    rows = read_rows(str(f))
    assert len(rows) == 2 and rows[1].where == "row 2"
    assert rows[0].data["messages"][1] == {"role": "assistant", "content": "Hello"}


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "d.jsonl", '{"text": "a"}\n')
    assert read_rows("sub/d.jsonl", base_dir=tmp_path)[0].data == {"text": "a"}


def test_bundled_demo_files_are_found_from_any_folder(tmp_path: Path) -> None:
    rows = read_rows("resources/datasets/demo-chat.jsonl", base_dir=tmp_path)
    assert len(rows) >= 32


# ------------------------------------------------------------------------------ broken files


def test_broken_json_on_a_line_names_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": "c",}\n')
    err = error_of(f)
    assert err.problems == [
        "line 3, column 14: not valid JSON (Expecting property name enclosed in double quotes)"
    ]
    assert err.source == str(f)
    assert str(f) in str(err)


def test_every_broken_line_is_counted_but_only_ten_listed(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", "{oops\n" * 25)
    err = error_of(f)
    assert len(err.problems) == 11
    assert err.problems[0].startswith("line 1, column 2:")
    assert err.problems[-1] == "... and 15 more"


def test_a_line_that_is_not_an_object(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '{"text": "a"}\n["text", "b"]\n')
    assert error_of(f).problems == ["line 2: expected a JSON object {...}, got an array"]


def test_json_array_file_named_jsonl_gets_a_hint(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '[\n{"text": "a"},\n{"text": "b"}\n]\n')
    assert ".json" in error_of(f).hint


def test_broken_json_file_names_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path / "d.json", '[\n  {"text": "a"},\n  {"text" "b"}\n]\n')
    assert error_of(f).problems == ["line 3, column 11: not valid JSON (Expecting ':' delimiter)"]


def test_json_array_item_that_is_not_an_object(tmp_path: Path) -> None:
    f = write(tmp_path / "d.json", '[\n {"text": "a"},\n "b"\n]')
    assert error_of(f).problems == ["line 3: item 2 is a string, expected an object"]


def test_csv_row_with_a_missing_column_names_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "prompt,completion\nq1,a1\nq2\n")
    err = error_of(f)
    assert err.problems == ["line 3: 1 values but the header has 2 columns (missing 'completion')"]
    assert "header" in err.hint


def test_csv_header_with_a_repeated_column(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,text\na,b\n")
    assert 'column name "text" appears more than once' in error_of(f).problems[0]


@pytest.mark.parametrize("name", ["d.jsonl", "d.csv", "d.json"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    err = error_of(write(tmp_path / name, ""))
    assert err.problems == ["the file is empty"]


def test_file_with_only_blank_lines_holds_no_rows(tmp_path: Path) -> None:
    assert error_of(write(tmp_path / "d.jsonl", "\n\n  \n")).problems == ["holds no rows"]


def test_unknown_extension_lists_what_is_read(tmp_path: Path) -> None:
    err = error_of(write(tmp_path / "d.txt", "hello\n"))
    assert err.problems == ['unknown file type ".txt"']
    assert "JSONL (.jsonl)" in err.hint and "Parquet" in err.hint


def test_missing_file(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.jsonl")
    assert err.problems == ["file not found"] and "owner/name" in err.hint


def test_a_folder_is_not_a_dataset(tmp_path: Path) -> None:
    assert error_of(tmp_path).problems == ["is a folder, not a file"]


def test_text_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    err = error_of(f)
    assert err.problems == ["line 2: not UTF-8 text (byte 0xe9)"] and "UTF-8" in err.hint


def test_corrupt_parquet_is_a_dataset_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    f = tmp_path / "d.parquet"
    f.write_bytes(b"PAR1 this is not really parquet")
    assert "not a readable Parquet file" in error_of(f).problems[0]


def test_gzipped_text_files_read_like_the_plain_ones(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a"}\n{bad\n'))
    # line numbers are those of the uncompressed text
    assert error_of(tmp_path / "d.jsonl.gz").problems[0].startswith("line 2, column 2:")
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(b"text\nhello\n"))
    assert read_rows(str(tmp_path / "d.csv.gz")) == [Row(2, {"text": "hello"})]
    # a Hub-like name with a compressed extension is a file, not a dataset id
    assert source_kind("owner/rows.jsonl.gz") == "local"


def test_a_damaged_gzip_file_and_a_gzipped_parquet_are_explained(tmp_path: Path) -> None:
    import gzip

    cut = gzip.compress(b'{"text": "a"}\n' * 1000)[:40]
    (tmp_path / "d.jsonl.gz").write_bytes(cut)
    err = error_of(tmp_path / "d.jsonl.gz")
    assert err.problems[0].startswith("a damaged gzip file") and "compress" in err.hint
    (tmp_path / "d.parquet.gz").write_bytes(gzip.compress(b"PAR1"))
    assert error_of(tmp_path / "d.parquet.gz").problems == ['unknown file type ".gz"']


# ------------------------------------------------------------------------------------ URLs


class _Files(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {}

    def do_GET(self) -> None:
        status, ctype, body = self.routes.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_url_jsonl_by_extension(file_server: str) -> None:
    _Files.routes = {
        "/data/d.jsonl?token=x": (200, "text/plain", b'{"text": "a"}\n{"text": "b"}\n')
    }
    rows = read_rows(f"{file_server}/data/d.jsonl?token=x")
    assert [r.data["text"] for r in rows] == ["a", "b"]


def test_url_gzipped_jsonl_by_extension(file_server: str) -> None:
    import gzip

    _Files.routes = {"/d.jsonl.gz": (200, "application/gzip", gzip.compress(b'{"text": "z"}\n'))}
    assert read_rows(f"{file_server}/d.jsonl.gz") == [Row(1, {"text": "z"})]


def test_url_kind_from_content_type(file_server: str) -> None:
    _Files.routes = {"/export": (200, "text/csv; charset=utf-8", b"text\nhello\n")}
    assert read_rows(f"{file_server}/export")[0] == Row(2, {"text": "hello"})


def test_url_kind_from_the_first_bytes(file_server: str) -> None:
    body = b'[{"text": "a"}]'
    _Files.routes = {"/blob": (200, "application/octet-stream", body)}
    assert read_rows(f"{file_server}/blob")[0].data == {"text": "a"}


def test_url_problems_name_the_url_and_the_line(file_server: str) -> None:
    _Files.routes = {"/d.jsonl": (200, "text/plain", b'{"text": "a"}\n{bad\n')}
    url = f"{file_server}/d.jsonl"
    err = error_of(url)
    assert err.source == url and err.problems[0].startswith("line 2, column 2:")


def test_url_http_error_is_explained(file_server: str) -> None:
    _Files.routes = {}
    err = error_of(f"{file_server}/missing.jsonl")
    assert err.problems == ["download failed: HTTP 404 Not Found"]


def test_url_nobody_listening_is_explained() -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = error_of(f"http://127.0.0.1:{port}/d.jsonl")
    assert err.problems[0].startswith("download failed:") and "network" in err.hint


def test_url_of_unknown_kind(file_server: str) -> None:
    _Files.routes = {"/page": (200, "text/html", b"<html></html>")}
    err = error_of(f"{file_server}/page")
    assert "cannot tell the file type (Content-Type text/html)" in err.problems[0]


def test_url_kind_rules() -> None:
    assert url_kind("https://x/a.parquet?sig=1", None, b"") == "parquet"
    assert url_kind("https://x/a", "application/x-ndjson", b"") == "jsonl"
    assert url_kind("https://x/a", None, b'{"a": 1}\n{"a": 2}') == "jsonl"
    assert url_kind("https://x/a", None, b'{\n "rows": []}') == "json"
    assert url_kind("https://x/a", None, b"PAR1....") == "parquet"
    assert url_kind("https://x/a", None, b"hello") is None


# ------------------------------------------------------------------------------------- Hub


def test_source_kinds(tmp_path: Path) -> None:
    assert source_kind("https://x/d.jsonl") == "url"
    assert source_kind("owner/name") == "hub"
    assert source_kind("owner/name.jsonl") == "local"
    (tmp_path / "owner").mkdir()
    write(tmp_path / "owner" / "name", "")
    assert source_kind("owner/name", base_dir=tmp_path) == "local"  # an existing path wins


def test_hub_id_offline_says_it_could_not_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    err = error_of("tunedeck-nobody/no-such-dataset")
    assert err.problems[0].startswith(
        "could not reach Hugging Face dataset 'tunedeck-nobody/no-such-dataset'"
    )
    assert "HF_HUB_OFFLINE" in err.hint and err.source == "tunedeck-nobody/no-such-dataset"


def test_the_data_package_imports_no_ml_library() -> None:
    code = (
        "import sys, trainer.data, trainer.data.inspect\n"
        "heavy = ('torch', 'datasets', 'transformers', 'pyarrow')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
