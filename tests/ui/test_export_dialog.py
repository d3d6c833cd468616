"""The Export dialog with real widgets offscreen, running the real export verb
(`python -m trainer export`) on a run that really trained (the tiny model, a few LoRA steps)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.core.jobs import Job
from app.core.model_export import human_size
from app.ui.export_dialog import ExportDialog
from tests.trainer.export_runs import run_config, train_lora

WAIT_MS = 240_000  # the subprocess imports torch and transformers: slow on a busy machine


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    pytest.importorskip("torch")
    return train_lora(tmp_path_factory.mktemp("dialog-run"), tiny_model_dir)


def job_for(config: Path, status: str = "completed") -> Job:
    return Job(
        id="exp1",
        name="export-demo",
        method="sft",
        model="tiny",
        target="local",
        status=status,
        config_json=config.read_text(encoding="utf-8"),
        created_at=time.time(),
        output_dir=str(config.parent / "out"),
    )


def choose(dialog: ExportDialog, kind: str, gguf_type: str = "f16") -> None:
    dialog.kind.setCurrentIndex(dialog.kind.findData(kind))
    dialog.gguf_type.setCurrentIndex(dialog.gguf_type.findData(gguf_type))


def test_the_form_follows_the_kind_and_checks_before_starting(
    qtbot: QtBot, tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = tmp_path / "config.json"
    data = run_config(tmp_path, tiny_model_dir, hub_repo="me/demo")
    config.write_text(json.dumps(data), encoding="utf-8")
    dialog = ExportDialog(job_for(config), python=sys.executable)
    qtbot.addWidget(dialog)
    choose(dialog, "gguf", "q8_0")
    assert dialog.folder.text() == str(tmp_path / "out" / "exports" / "gguf-q8_0")
    assert dialog.gguf_type.isEnabled() and not dialog.repo.isEnabled()
    choose(dialog, "hub")
    assert dialog.repo.text() == "me/demo" and dialog.repo.isEnabled()
    assert not dialog.public.isChecked()  # private unless ticked
    assert not dialog.folder.isEnabled() and not dialog.gguf_type.isEnabled()
    dialog.repo.setText("no-owner")
    dialog.start()
    assert dialog.process is None and "owner/name" in dialog.status.text()
    choose(dialog, "merged")
    dialog.start()  # the job's output folder does not exist: refused before any process
    assert dialog.process is None
    assert "does not exist" in dialog.status.text() and dialog.start_button.isEnabled()


@pytest.mark.slow  # the real export subprocess imports torch and transformers: 20-60 s here
def test_gguf_export_shows_progress_and_size_and_asks_before_overwriting(
    qtbot: QtBot, trained: Path, tmp_path: Path
) -> None:
    asked: list[Path] = []
    answer = [False]

    def confirm(folder: Path) -> bool:
        asked.append(folder)
        return answer[0]

    dialog = ExportDialog(job_for(trained), python=sys.executable, confirm_overwrite=confirm)
    qtbot.addWidget(dialog)
    out = tmp_path / "gguf"
    choose(dialog, "gguf", "q8_0")
    dialog.folder.setText(str(out))
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert dialog.cancel_button.text() == "Cancel" and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.outcome is not None and not dialog.running, timeout=WAIT_MS)
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert files.keys() == {"export-demo-q8_0.gguf", "Modelfile"}
    assert dialog.size_label.text() == f"{human_size(sum(files.values()))} in 2 files"
    assert dialog.status.text() == f"Done: {human_size(sum(files.values()))} written to {out}"
    assert "writing 21 tensors (q8_0)" in dialog.details.toPlainText()
    assert dialog.progress.value() == dialog.progress.maximum()
    assert dialog.start_button.isEnabled() and dialog.cancel_button.text() == "Close"

    before = (out / "export-demo-q8_0.gguf").stat().st_mtime_ns
    dialog.start()  # the folder is in use now: the dialog asks, the answer is no
    assert asked == [out] and dialog.process is None
    assert dialog.status.text() == f"Nothing was written: {out} already holds files."
    assert (out / "export-demo-q8_0.gguf").stat().st_mtime_ns == before

    answer[0] = True
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running and dialog.process is None, timeout=WAIT_MS)
    assert dialog.error is None
    assert (out / "export-demo-q8_0.gguf").stat().st_mtime_ns != before


@pytest.mark.slow  # as above
def test_cancel_stops_the_export_and_leaves_nothing(
    qtbot: QtBot, trained: Path, tmp_path: Path
) -> None:
    dialog = ExportDialog(job_for(trained), python=sys.executable)
    qtbot.addWidget(dialog)
    out = tmp_path / "exports" / "merged"
    choose(dialog, "merged")
    dialog.folder.setText(str(out))
    dialog.start()
    # wait until the trainer is at work (the merge has begun), then cancel
    qtbot.waitUntil(lambda: "merging" in dialog.status.text(), timeout=WAIT_MS)
    process = dialog.process
    assert process is not None
    started = time.monotonic()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=10_000)
    assert time.monotonic() - started < 8
    qtbot.waitUntil(lambda: dialog.process is None, timeout=10_000)
    assert process.exit_code != 0 and dialog.outcome is None
    assert "Cancelled" in dialog.status.text()
    assert not out.exists()
    assert not (tmp_path / "exports").exists() or list((tmp_path / "exports").iterdir()) == []


def test_export_model_opens_the_dialog_for_a_finished_job_only(
    qtbot: QtBot, qloop: Any, tmp_path: Path
) -> None:
    from app.core.store import Store
    from tests.ui.app_harness import make_app

    store = Store()
    config = json.dumps({"name": "done", "method": "sft"})
    done = store.create_job(
        name="done", method="sft", model="m", config_json=config, output_dir=str(tmp_path)
    )
    store.set_status(done.id, "completed")
    live = store.create_job(name="live", method="sft", model="m", config_json=config)
    store.set_status(live.id, "running")
    store.close()
    tunedeck = make_app(tmp_path)
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    qloop.run_until_complete(tunedeck.start())
    try:
        window = tunedeck.window
        window.select_job(live.id)
        assert not window.export_action.isEnabled()
        window.select_job(done.id)
        assert window.export_action.isEnabled()
        assert window.export_action in window._job_actions()  # the list's context menu
        window.export_action.trigger()
        dialogs = window.findChildren(ExportDialog)
        assert [d.job.id for d in dialogs] == [done.id]
        assert dialogs[0].isVisible()
        dialogs[0].close()
    finally:
        qloop.run_until_complete(tunedeck.stop())
