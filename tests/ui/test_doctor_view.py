"""The Doctor view with real widgets offscreen, running the real doctor subprocess
(`python -m trainer doctor --json`, the tiny model) on the demo dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.ui.dataset_picker import DatasetPicker
from app.ui.doctor_view import TRAINED_BG, DoctorView
from app.ui.schema_fields import all_fields, walk_schema
from tests.conftest import REPO_ROOT

WAIT_MS = 180_000  # a busy two-core machine: loading transformers + TRL takes a while


def _demo_config(tmp_path: Path, **dataset: Any) -> dict[str, Any]:
    config = json.loads((REPO_ROOT / "resources/presets/demo-sft.json").read_text())
    config["dataset"].update(dataset)
    return config


@pytest.mark.slow  # the real doctor subprocess imports transformers and TRL: about 20 s here
def test_doctor_view_shows_samples_histogram_and_findings(qtbot: QtBot, tmp_path: Path) -> None:
    rows = (REPO_ROOT / "resources/datasets/demo-chat.jsonl").read_text().splitlines()
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join([*rows, rows[2]]) + "\n", encoding="utf-8")  # line 65 = line 3
    view = DoctorView(cwd=REPO_ROOT)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        view.start(_demo_config(tmp_path, path=str(data)))
    result = done.args[0]
    assert result is not None and view.error is None, view.status.text()
    assert result["rows"] == 65

    samples = view.samples.toHtml()
    assert "capital of France" in samples and TRAINED_BG.lstrip("#") in samples.lower()
    assert view.bars is not None
    heights = view.bars.opts["height"]
    assert sum(heights) == 65 and len(heights) == len(result["histogram"]["counts"])
    assert view.max_line.value() == 256

    items = [view.findings.topLevelItem(i) for i in range(view.findings.topLevelItemCount())]
    texts = [(item.text(0), item.text(1), item.text(2), item.text(3)) for item in items]
    duplicate = next(t for t in texts if "repeat an earlier row exactly" in t[2])
    assert duplicate[0].endswith("warning") and duplicate[1] == "1" and duplicate[3] == "3, 65"
    assert "65 rows" in view.status.text() and not view.progress.isVisible()


def test_doctor_view_says_what_is_wrong_with_a_missing_file(qtbot: QtBot, tmp_path: Path) -> None:
    view = DoctorView(cwd=REPO_ROOT)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        view.start(_demo_config(tmp_path, path=str(tmp_path / "gone.jsonl")))
    assert done.args[0] is None
    assert "gone.jsonl" in view.status.text() and view.error


def test_cancel_stops_the_doctor(qtbot: QtBot, tmp_path: Path) -> None:
    view = DoctorView(cwd=REPO_ROOT)
    qtbot.addWidget(view)
    view.start(_demo_config(tmp_path))
    assert view.running and view.cancel_button.isVisibleTo(view)
    process = view._process
    view.cancel()
    assert process is not None and process.wait(10) != 0
    assert view.status.text() == "Cancelled." and not view.running
    qtbot.wait(200)  # late events of the cancelled run change nothing
    assert view.result is None and view.status.text() == "Cancelled."


def test_the_dataset_picker_opens_the_doctor_beside_its_preview(
    qtbot: QtBot, tmp_path: Path
) -> None:
    picker = DatasetPicker(all_fields(walk_schema())["dataset.path"])
    qtbot.addWidget(picker)
    picker.set_value(str(tmp_path / "absent.jsonl"))
    assert picker.form_config()["dataset"]["path"].endswith("absent.jsonl")
    picker.base_dir = REPO_ROOT
    picker.run_doctor()
    assert picker.doctor is not None and picker.doctor.isVisibleTo(picker)
    with qtbot.waitSignal(picker.doctor.finished, timeout=WAIT_MS):
        pass
    assert picker.doctor.error  # no model in a bare picker's config: said, not crashed


def test_progress_events_move_the_bar_and_stale_ones_are_ignored(qtbot: QtBot) -> None:
    view = DoctorView(cwd=REPO_ROOT)
    qtbot.addWidget(view)
    view._generation = 3
    view.progress.show()
    view._on_event(3, {"event": "progress", "done": 4000, "total": 100_000})
    assert (view.progress.maximum(), view.progress.value()) == (100_000, 4000)
    assert "4,000 of 100,000" in view.status.text()
    view._on_event(2, {"event": "progress", "done": 9000, "total": 100_000})  # an earlier run's
    assert view.progress.value() == 4000
    view._on_event(3, {"event": "error", "message": "line 7: bad row", "hint": "fix line 7"})
    assert view.error == "line 7: bad row\nHint: fix line 7" and not view.progress.isVisible()
