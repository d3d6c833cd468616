"""Which Python each GUI entry point runs trainer work with (the dataset doctor, the Try tab,
Export, a local launch): launch_python's answer, over the whole app (real widgets offscreen, real
subprocesses of a recording "training Python", the real settings file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.core.notifications import RecordingNotifier
from app.core.settings import Settings, save_settings
from app.core.store import Store
from app.core.trainer_python import SETUP_HINT, trainer_python_message
from app.main import Tunedeck
from app.ui.dataset_picker import DatasetPicker
from app.ui.export_dialog import ExportDialog
from tests.ui.app_harness import MemoryCredentials, free_port, until
from trainer.config import parse_config

WAIT_S = 30.0


def _recording_python(folder: Path) -> tuple[Path, Path]:
    """A 'training Python' that writes its arguments to a file and ends: (itself, the file)."""
    calls = folder / "calls.txt"
    script = folder / "training-python"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexit 1\n')
    script.chmod(0o755)
    return script, calls


def _finished_job(tmp_path: Path) -> str:
    """A completed job whose output folder holds a model (the Try tab and Export offer it)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    config = json.dumps({"name": "done", "method": "sft", "output": {"output_dir": str(run)}})
    with Store() as store:
        job = store.create_job(
            name="done", method="sft", model="m", config_json=config, output_dir=str(run)
        )
        store.set_status(job.id, "completed")
    return job.id


def _start_app(tmp_path: Path, qtbot: QtBot, qloop: Any, trainer_python: str) -> Tunedeck:
    """The app as a user starts it: the settings come from the saved file."""
    save_settings(
        Settings(receiver_port=free_port(), trainer_python=trainer_python, first_run_done=True)
    )
    tunedeck = Tunedeck(
        credentials=MemoryCredentials(),
        notifier=RecordingNotifier(),
        base_dir=tmp_path,
        grace_s=30.0,
    )
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    qloop.run_until_complete(tunedeck.start())
    return tunedeck


def _launch_config(tmp_path: Path, name: str) -> Any:
    return parse_config({"name": name, "output": {"output_dir": str(tmp_path / "out" / name)}})


def test_a_frozen_app_without_an_environment_shows_the_setup_hint_everywhere_and_starts_nothing(
    qtbot: QtBot, qloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    warnings: list[tuple[str, str]] = []
    monkeypatch.setattr(
        QMessageBox, "warning", lambda _parent, title, text, *_a: warnings.append((title, text))
    )
    job_id = _finished_job(tmp_path)
    tunedeck = _start_app(tmp_path, qtbot, qloop, trainer_python="")
    try:
        window = tunedeck.window
        # the doctor button beside the New Run dialog's dataset
        [picker] = window.run_dialog().findChildren(DatasetPicker)
        picker.doctor_button.click()
        doctor = picker.doctor
        assert doctor is not None and not doctor.running
        assert "no training environment" in doctor.status.text()
        assert SETUP_HINT in doctor.status.text() and doctor.error

        # the Try tab, shown for a finished job: its model does not start
        window.select_job(job_id)
        try_tab = window.job_view.try_tab
        window.job_view.tabs.setCurrentWidget(window.job_view.try_host)
        assert SETUP_HINT in try_tab.panes["A"].status.text()
        assert try_tab.sessions.sessions == {}

        # Export: a message box instead of the dialog
        window.export_action.trigger()
        assert warnings and warnings[-1][0] == "Export" and SETUP_HINT in warnings[-1][1]
        assert window.findChildren(ExportDialog) == []

        # a local launch: refused with the same words, the job never got a process
        window.dialog.launch_requested.emit(_launch_config(tmp_path, "frozen-run"), "local")
        qloop.run_until_complete(until(lambda: len(warnings) == 2, WAIT_S, "the launch refusal"))
        assert SETUP_HINT in warnings[-1][1]
        [job] = [j for j in tunedeck.store.list_jobs() if j.name == "frozen-run"]
        assert job.status == "failed" and job.pid is None
        assert SETUP_HINT in (job.error or "")
        # and Settings' Training environment page says the same
        assert SETUP_HINT in (trainer_python_message("") or "")
    finally:
        qloop.run_until_complete(tunedeck.stop())


def test_the_training_python_saved_in_settings_is_what_every_entry_point_runs(
    qtbot: QtBot, qloop: Any, tmp_path: Path
) -> None:
    python, calls = _recording_python(tmp_path)

    def called(verb: str) -> bool:
        return calls.exists() and any(verb in line for line in calls.read_text().splitlines())

    job_id = _finished_job(tmp_path)
    tunedeck = _start_app(tmp_path, qtbot, qloop, trainer_python=str(python))
    try:
        window = tunedeck.window
        [picker] = window.run_dialog().findChildren(DatasetPicker)
        picker.doctor_button.click()
        qloop.run_until_complete(until(lambda: called("-m trainer doctor"), WAIT_S, "doctor"))

        window.select_job(job_id)
        window.job_view.tabs.setCurrentWidget(window.job_view.try_host)
        qloop.run_until_complete(until(lambda: called("-m trainer chat"), WAIT_S, "chat"))

        window.export_action.trigger()
        [export] = window.findChildren(ExportDialog)
        assert export.python == str(python)
        export.folder.setText(str(tmp_path / "exported"))
        export.start()
        qloop.run_until_complete(until(lambda: called("-m trainer export"), WAIT_S, "export"))
        export.close()

        window.dialog.launch_requested.emit(_launch_config(tmp_path, "saved-python"), "local")
        qloop.run_until_complete(until(lambda: called("--execution-id"), WAIT_S, "the run"))
        [job] = [j for j in tunedeck.store.list_jobs() if j.name == "saved-python"]
        qloop.run_until_complete(
            until(lambda: tunedeck.store.require_job(job.id).is_final, WAIT_S, "the run to end")
        )
    finally:
        qloop.run_until_complete(tunedeck.stop())
