"""The main window over a real store and receiver (no training here; see test_app_end_to_end)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QMessageBox

from app.core.processes import process_start_time
from app.core.store import Store
from app.core.tokens import hash_token
from app.ui.jobs_model import COLUMNS
from tests.ui.app_harness import make_app, until
from trainer.config import parse_config


def _history() -> dict[str, str]:
    """Three finished jobs, as earlier sessions left them."""
    store = Store()
    ids = {}
    for name, method, status, loss in (
        ("alpha-sft", "sft", "completed", 1.25),
        ("beta-dpo", "dpo", "failed", None),
        ("gamma-sft", "sft", "cancelled", 2.5),
    ):
        config = {"name": name, "method": method, "training": {"learning_rate": 1e-4}}
        job = store.create_job(
            name=name, method=method, model="builtin:tiny-llama", config_json=json.dumps(config)
        )
        store.set_status(job.id, "running")
        store.add_metrics(
            job.id,
            [{"step": s, "train_loss": 3.0 - s * 0.1, "learning_rate": 1e-4} for s in range(1, 11)],
        )
        if loss is not None:
            store.update_job(job.id, last_loss=loss)
        store.set_status(job.id, status, "it broke" if status == "failed" else None)
        store.add_alert({"type": f"job_{status}", "job_id": job.id, "message": f"{name} ended"})
        ids[name] = job.id
        time.sleep(0.01)  # distinct creation times: newest first
    store.close()
    return ids


@pytest.fixture
def started(qtbot, qloop, tmp_path: Path):
    ids = _history()
    tunedeck = make_app(tmp_path)
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    qloop.run_until_complete(tunedeck.start())
    yield tunedeck, ids
    qloop.run_until_complete(tunedeck.stop())


def _cells(window, row: int) -> dict[str, str]:
    model = window.table.model()
    return {c: model.index(row, i).data() for i, c in enumerate(COLUMNS)}


def test_history_lists_every_job_newest_first_with_its_columns(started) -> None:
    window = started[0].window
    assert window.table.model().rowCount() == 3
    first = _cells(window, 0)
    assert first["Name"] == "gamma-sft" and first["Status"] == "cancelled"
    assert first["Final loss"] == "2.5000" and first["Where"] == "Local"
    assert first["Method"] == "SFT" and first["Model"] == "builtin:tiny-llama"
    assert first["Duration"] != "" and first["Started"] != ""
    assert not window.empty_hint.isVisible()


def test_search_and_status_filter_narrow_the_list(started) -> None:
    window = started[0].window
    window.search.setText("dpo")
    assert window.table.model().rowCount() == 1
    assert _cells(window, 0)["Name"] == "beta-dpo"
    window.search.clear()
    window.status_filter.setCurrentIndex(window.status_filter.findData("completed"))
    assert [_cells(window, r)["Name"] for r in range(window.table.model().rowCount())] == [
        "alpha-sft"
    ]


def test_selecting_a_job_shows_its_charts_alerts_and_config(started) -> None:
    tunedeck, ids = started
    window = tunedeck.window
    window.select_job(ids["alpha-sft"])
    view = window.job_view
    assert view.title.text() == "alpha-sft"
    view.charts.redraw()  # what the next frame would do
    assert list(view.charts.plotted(ids["alpha-sft"], "train_loss")) == [
        pytest.approx(3.0 - s * 0.1) for s in range(1, 11)
    ]
    assert view.alerts.model().rowCount() == 1
    assert "alpha-sft ended" in view.alerts.model().index(0, 2).data()
    assert json.loads(view.config.toPlainText())["name"] == "alpha-sft"
    # a finished job can be duplicated and deleted but not cancelled
    assert not window.cancel_action.isEnabled()
    assert window.duplicate_action.isEnabled() and window.delete_action.isEnabled()
    assert not window.resume_action.isEnabled()  # completed: nothing to resume
    window.select_job(ids["beta-dpo"])
    assert window.resume_action.isEnabled()  # failed: resumable


def test_selecting_several_jobs_overlays_their_charts(started, qtbot) -> None:
    tunedeck, ids = started
    window = tunedeck.window
    window.table.selectAll()
    charts = window.job_view.charts
    assert {job_id for job_id, _ in charts.jobs} == set(ids.values())
    charts.redraw()
    legend = charts.plots["loss"].getPlotItem().legend
    assert len(legend.items) == 3


def test_metrics_posted_to_the_receiver_reach_the_chart_of_a_running_job(started, qloop) -> None:
    tunedeck, _ = started
    store = tunedeck.store
    job = store.create_job(name="live", method="sft", model="m")
    store.update_job(job.id, token_hash=hash_token("job-token"))
    store.set_status(job.id, "running")
    tunedeck.ingestor.job_changed(store.require_job(job.id))
    window = tunedeck.window

    async def scenario() -> None:
        await until(lambda: window.jobs.row_of(job.id) is not None, 5, "the new job's row")
        window.select_job(job.id)
        async with httpx.AsyncClient() as client:
            for step in (1, 2, 3):
                response = await client.post(
                    tunedeck.receiver.metrics_url,
                    headers={"Authorization": "Bearer job-token"},
                    json={"job_id": job.id, "metrics": [{"step": step, "train_loss": 1.0 / step}]},
                )
                assert response.status_code == 200, response.text
        charts = window.job_view.charts
        await until(lambda: len(charts.plotted(job.id, "train_loss")) == 3, 5, "three points")

    qloop.run_until_complete(scenario())
    assert window.cancel_action.isEnabled()  # running: can be cancelled
    assert not window.delete_action.isEnabled()


def test_delete_removes_the_job_and_its_metrics(started, monkeypatch) -> None:
    tunedeck, ids = started
    window = tunedeck.window
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.select_job(ids["beta-dpo"])
    window.delete_action.trigger()
    assert window.jobs.row_of(ids["beta-dpo"]) is None
    assert tunedeck.store.get_job(ids["beta-dpo"]) is None
    assert tunedeck.store.metrics(ids["beta-dpo"]) == []


def test_duplicate_opens_the_form_with_the_jobs_config_under_a_new_name(started) -> None:
    tunedeck, ids = started
    window = tunedeck.window
    window.select_job(ids["beta-dpo"])
    window.duplicate_action.trigger()
    form = window.dialog.form
    assert form.method == "dpo"
    assert form.config().name == "beta-dpo-copy"
    assert form.config().training.learning_rate == 1e-4
    window.dialog.reject()


def test_menus_have_the_shortcuts_a_desktop_user_expects(started) -> None:
    window = started[0].window
    menus = {a.text().replace("&", ""): a for a in window.menuBar().actions()}
    assert list(menus) == ["File", "Run", "Help"]
    shortcuts = {
        a.text().replace("&", ""): a.shortcut()
        for m in menus.values()
        for a in m.menu().actions()
        if a.text()
    }
    assert shortcuts["New run…"] == QKeySequence(QKeySequence.StandardKey.New)
    assert shortcuts["Open config…"] == QKeySequence(QKeySequence.StandardKey.Open)
    assert shortcuts["Quit"].toString() == "Ctrl+Q"
    assert shortcuts["Cancel run"].toString() == "Ctrl+."
    assert "About Tunedeck" in shortcuts


def test_the_window_paints_before_the_core_starts_and_then_reads_the_history(
    qtbot, qloop, tmp_path
) -> None:
    ids = _history()
    tunedeck = make_app(tmp_path)
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    assert tunedeck.window.table.model().rowCount() == 0
    assert not tunedeck.window.new_run_action.isEnabled()  # nothing to launch with yet
    qloop.run_until_complete(tunedeck.start())
    try:
        assert tunedeck.window.table.model().rowCount() == len(ids)
        assert tunedeck.window.new_run_action.isEnabled()
        assert tunedeck.receiver.url in tunedeck.window.statusBar().currentMessage()
    finally:
        qloop.run_until_complete(tunedeck.stop())


FAKE_TRAINER = Path(__file__).resolve().parents[1] / "app" / "fake_trainer.py"


def _fake_training_python(folder: Path) -> Path:
    """A 'training Python' that runs the fake trainer where the real one would run the trainer
    (`python -m trainer --config ...` -> `python fake_trainer.py --config ...`)."""
    script = folder / "fake-python"
    script.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{FAKE_TRAINER}" "$@"\n')
    script.chmod(0o755)
    return script


def test_settings_opens_the_settings_dialog_and_saved_choices_apply_at_once(
    qtbot, qloop, tmp_path, monkeypatch
) -> None:
    from app.core.credentials import CredentialStore
    from app.ui.settings_dialog import SettingsDialog

    dump = tmp_path / "trainer-env.json"
    monkeypatch.setenv("FAKE_STEPS", "2")
    monkeypatch.setenv("FAKE_ENV_DUMP", str(dump))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    tunedeck = make_app(tmp_path)
    tunedeck.credentials = CredentialStore(timeout_s=2)  # the dialog edits the real store
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    qloop.run_until_complete(tunedeck.start())
    try:
        receiver_url = tunedeck.receiver.url
        tunedeck.window.settings_action.trigger()
        [dialog] = tunedeck.window.findChildren(SettingsDialog)
        assert dialog.isVisible()
        qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
        # what a user changes: a notification, the training Python, the stall time, the Hub
        # token (typed, not saved with its own button), and the receiver's port
        dialog.notify_boxes["job_completed"].setChecked(False)
        dialog.python.setText(str(_fake_training_python(tmp_path)))
        dialog.stall.setValue(1)
        dialog.credentials.rows["hf_token"].edit.setText("hf_TYPED_IN_SETTINGS")
        dialog.port.setValue(tunedeck.receiver.port + 1)
        assert "next time Tunedeck starts" in dialog.findChild(QLabel, "receiverNote").text()
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
        qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)

        assert not tunedeck.notifications.policy.should_notify("job_completed")
        assert tunedeck.notifications.policy.should_notify("job_failed")
        # the receiver stays where the running trainers report to, and the app says so
        assert tunedeck.receiver.url == receiver_url
        assert "next time Tunedeck starts" in tunedeck.window.statusBar().currentMessage()
        # the stall time: a run silent for just over a minute is reported now
        quiet = tunedeck.store.create_job(name="quiet", method="sft", model="m")
        tunedeck.store.set_status(quiet.id, "running")
        assert tunedeck.check_stalls(now=time.time() + 61) == [quiet.id]
        tunedeck.store.set_status(quiet.id, "cancelled")
        # the next launch runs the chosen Python with the token just saved
        config = parse_config({"name": "after-settings", "output": {"output_dir": "out/{name}"}})
        job_id = qloop.run_until_complete(tunedeck.service.launch(config, "local"))
        qloop.run_until_complete(
            until(lambda: tunedeck.store.require_job(job_id).is_final, 30, "the run to end")
        )
        assert tunedeck.store.require_job(job_id).status == "completed"
        env = json.loads(dump.read_text())
        assert env["HF_TOKEN"] == "hf_TYPED_IN_SETTINGS"
        assert env["JOB_ID"] == job_id  # the fake trainer ran: the new Python was used
    finally:
        qloop.run_until_complete(tunedeck.stop())


def test_a_reattached_run_that_has_not_reported_yet_is_not_stalled_at_once(
    qtbot, qloop, tmp_path
) -> None:
    # a run started an hour ago, still going, silent since the app was closed
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store() as store:
            job = store.create_job(name="long", method="sft", model="m")
            store.update_job(
                job.id, pid=trainer.pid, pid_started_at=process_start_time(trainer.pid)
            )
            store.set_status(job.id, "running")
            store._db.execute(
                "UPDATE jobs SET started_at = started_at - 3600, created_at = created_at - 3600"
                " WHERE id = ?",
                (job.id,),
            )
        tunedeck = make_app(tmp_path)  # stall after 10 minutes (the default)
        qtbot.addWidget(tunedeck.window)
        qloop.run_until_complete(tunedeck.start())
        try:
            assert tunedeck.launcher.status(job.id).running  # reattached
            assert tunedeck.check_stalls() == []
            assert tunedeck.check_stalls(now=time.time() + 9 * 60) == []
            assert tunedeck.check_stalls(now=time.time() + 11 * 60) == [job.id]
            alerts = [a["type"] for a in tunedeck.store.alerts(job.id)]
            assert alerts == ["stalled"]
        finally:
            qloop.run_until_complete(tunedeck.stop())
    finally:
        trainer.kill()
        trainer.wait()
