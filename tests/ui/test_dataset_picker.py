"""The dataset picker reads the file off the GUI thread and shows format, rows and problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.ui.dataset_picker import DatasetPicker
from app.ui.presets import PresetLibrary
from app.ui.run_form import RunDialog
from app.ui.schema_fields import all_fields, walk_schema


@pytest.fixture
def picker(qtbot, tmp_path: Path) -> DatasetPicker:
    widget = DatasetPicker(all_fields(walk_schema())["dataset.path"])
    widget.base_dir = tmp_path
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_good_file_shows_its_format_row_count_and_first_rows(qtbot, picker, tmp_path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(12)
    ]
    _write(tmp_path / "chat.jsonl", rows)
    qtbot.keyClicks(picker.line, "chat.jsonl")
    qtbot.waitUntil(lambda: picker.report is not None and not picker.busy, timeout=10_000)
    assert picker.report.ok
    assert picker.summary.text().startswith("format: messages · 12 rows · ok for sft")
    assert picker.preview_model.rowCount() == 5
    assert picker.preview_model.headerData(0, Qt.Orientation.Horizontal) == "messages"
    assert "q0" in picker.preview_model.index(0, 0).data()
    assert not picker.problems.isVisible()


def test_a_bad_row_is_named_by_its_line_before_launch(qtbot, picker, tmp_path) -> None:
    rows = [{"text": "fine"}, {"text": "fine"}, {"text": 42}]
    _write(tmp_path / "bad.jsonl", rows)
    picker.set_method("cpt")
    picker.set_value(str(tmp_path / "bad.jsonl"))
    qtbot.waitUntil(lambda: picker.report is not None and not picker.busy, timeout=10_000)
    assert not picker.report.ok
    assert picker.problems.isVisible()
    assert "line 3" in picker.problems.text()


def test_changing_the_method_checks_the_rows_against_it_again(qtbot, picker, tmp_path) -> None:
    _write(tmp_path / "text.jsonl", [{"text": "a"}, {"text": "b"}])
    picker.set_value("text.jsonl")
    qtbot.waitUntil(lambda: picker.report is not None and not picker.busy, timeout=10_000)
    assert picker.report.ok
    picker.set_method("dpo")
    qtbot.waitUntil(lambda: picker.report.method == "dpo" and not picker.busy, timeout=10_000)
    assert not picker.report.ok
    assert "chosen" in picker.problems.text()


def test_a_hub_dataset_is_not_read_in_the_gui(qtbot, picker) -> None:
    picker.set_value("someone/some-dataset")
    qtbot.waitUntil(lambda: picker.report is not None and not picker.busy, timeout=10_000)
    assert not picker.report.checked
    assert picker.summary.text().startswith("Not read here.")


def test_the_run_dialog_uses_the_picker_and_follows_the_method(qtbot, tmp_path) -> None:
    dialog = RunDialog(
        PresetLibrary(tmp_path / "presets"), overrides={"dataset.path": DatasetPicker.factory}
    )
    qtbot.addWidget(dialog)
    picker = dialog.form.editor("dataset.path")
    assert isinstance(picker, DatasetPicker)
    dialog.form.set_method("kto")
    assert picker.method == "kto"
