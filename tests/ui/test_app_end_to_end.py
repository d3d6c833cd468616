"""The whole app with real training: fill the form, launch a local run of the tiny model, watch
its points reach the chart, cancel a second run, restart the window and find both in history.

Slow (two real trainer processes, about half a minute on two cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.notifications import RecordingNotifier
from app.ui.main_window import MainWindow
from tests.ui.app_harness import demo_config, free_port, make_app, until
from trainer.config import parse_config

pytestmark = pytest.mark.slow


def _fill_and_launch(qtbot, window: MainWindow, name: str, max_steps: int) -> None:
    """What a user does: New run, a preset, edit fields, Launch."""
    window.new_run_action.trigger()
    dialog = window.dialog
    dialog.apply_preset(dialog.presets.find("demo-sft", builtin=True))
    form = dialog.form
    name_edit = form.editor("name").focus_widget()
    name_edit.selectAll()
    qtbot.keyClicks(name_edit, name)
    form.editor("training.max_steps").focus_widget().setValue(max_steps)
    lr = form.editor("training.learning_rate").focus_widget()
    lr.selectAll()
    qtbot.keyClicks(lr, "-1")  # a slip: the form says so next to the field, Launch is off
    assert "greater than 0" in form.error_text("training.learning_rate")
    assert not dialog.launch_button.isEnabled()
    lr.selectAll()
    qtbot.keyClicks(lr, "0.001")
    assert form.error_text("training.learning_rate") == ""
    config = form.config()
    assert (config.name, config.training.max_steps) == (name, max_steps)
    qtbot.mouseClick(dialog.launch_button, Qt.MouseButton.LeftButton)


def _job_named(tunedeck, name: str):
    return next((j for j in tunedeck.store.list_jobs() if j.name == name), None)


def test_launch_watch_cancel_and_find_both_jobs_after_a_restart(qtbot, qloop, tmp_path) -> None:
    notifier = RecordingNotifier()
    tunedeck = make_app(tmp_path, notifier)
    window = tunedeck.window
    qtbot.addWidget(window)
    window.show()
    qloop.run_until_complete(tunedeck.start())

    async def first_run() -> str:
        _fill_and_launch(qtbot, window, "first", max_steps=12)
        job = await until(lambda: _job_named(tunedeck, "first"), 30, "the first job")
        charts = window.job_view.charts
        await until(
            lambda: (charts.redraw() or True) and len(charts.plotted(job.id, "train_loss")) > 0,
            120,
            "the first loss points on the chart",
        )
        await until(
            lambda: tunedeck.store.require_job(job.id).status == "completed", 120, "completion"
        )
        await until(
            lambda: any(n.alert_type == "job_completed" for n in notifier.sent),
            10,
            "the job_completed notification",
        )
        # the final alert can come before the trainer's last lines reach the log view
        log = window.job_view.log
        await until(lambda: "done: 12 steps" in log.text(), 30, "the trainer's last line")
        return job.id

    first_id = qloop.run_until_complete(first_run())
    assert window.table.model().index(0, 4).data() == "completed"
    assert window.jobs.job_by_id(first_id).final_loss is not None

    async def second_run() -> str:
        _fill_and_launch(qtbot, window, "second", max_steps=5000)
        job = await until(lambda: _job_named(tunedeck, "second"), 30, "the second job")
        await until(
            lambda: tunedeck.store.metric_count(job.id) > 0, 120, "the second run's first points"
        )
        window.select_job(job.id)
        assert window.cancel_action.isEnabled()
        window.cancel_action.trigger()
        await until(
            lambda: tunedeck.store.require_job(job.id).status == "cancelled", 90, "cancelled"
        )
        # resumable once the trainer has saved its checkpoint and exited
        await until(window.resume_action.isEnabled, 60, "the trainer's exit")
        return job.id

    second_id = qloop.run_until_complete(second_run())
    assert window.jobs.job_by_id(second_id).status == "cancelled"
    qloop.run_until_complete(tunedeck.stop())
    window.close()

    again = make_app(tmp_path)
    qtbot.addWidget(again.window)
    again.window.show()
    qloop.run_until_complete(again.start())
    try:
        statuses = {j.id: j.status for j in again.window.jobs.jobs()}
        assert statuses == {first_id: "completed", second_id: "cancelled"}
        assert again.window.table.model().rowCount() == 2
    finally:
        qloop.run_until_complete(again.stop())


def test_a_run_outlives_the_window_and_is_followed_again_after_a_restart(
    qtbot, qloop, tmp_path
) -> None:
    port = free_port()  # the trainer keeps posting to it: the next start listens there again
    first = make_app(tmp_path, port=port)
    qtbot.addWidget(first.window)
    first.window.show()
    qloop.run_until_complete(first.start())

    async def launch() -> str:
        config = parse_config(demo_config(max_steps=5000) | {"name": "long"})
        job_id = await first.window.launch(config, "local")
        await until(lambda: first.store.metric_count(job_id) > 0, 120, "the first points")
        return job_id

    job_id = qloop.run_until_complete(launch())
    qloop.run_until_complete(first.stop())  # Tunedeck closes; the trainer does not
    first.window.close()

    again = make_app(tmp_path, port=port)
    qtbot.addWidget(again.window)
    again.window.show()
    qloop.run_until_complete(again.start())
    try:
        window = again.window
        assert window.jobs.job_by_id(job_id).status == "running"
        assert "following 1 run" in window.statusBar().currentMessage()
        window.select_job(job_id)
        charts = window.job_view.charts
        charts.redraw()
        drawn = len(charts.plotted(job_id, "train_loss"))  # its history, read from the store
        assert drawn > 0

        async def follow_then_cancel() -> None:
            # new points reach the new window, through the new receiver on the same port
            await until(
                lambda: (
                    (charts.redraw() or True) and len(charts.plotted(job_id, "train_loss")) > drawn
                ),
                60,
                "new points on the chart",
            )
            assert window.cancel_action.isEnabled()
            window.cancel_action.trigger()
            await until(
                lambda: again.store.require_job(job_id).status == "cancelled", 90, "cancelled"
            )

        qloop.run_until_complete(follow_then_cancel())
        assert window.jobs.job_by_id(job_id).status == "cancelled"
        last_step = max(p["step"] for p in again.store.metrics(job_id))

        async def resume_then_cancel() -> None:
            # the same job carries on from the checkpoint its clean stop saved, once the
            # trainer has finished writing it and exited
            await until(window.resume_action.isEnabled, 60, "the trainer's exit")
            window.resume_action.trigger()
            await until(
                lambda: again.store.require_job(job_id).status == "running", 60, "running again"
            )
            await until(
                lambda: max(p["step"] for p in again.store.metrics(job_id)) > last_step,
                120,
                "steps past the checkpoint",
            )
            window.cancel_action.trigger()
            await until(
                lambda: again.store.require_job(job_id).status == "cancelled", 90, "cancelled"
            )

        qloop.run_until_complete(resume_then_cancel())
        assert [j.id for j in again.store.list_jobs()] == [job_id]  # the same job, not a new one
        assert "resume_from_checkpoint" in json.dumps(window.service.config(job_id))
    finally:
        qloop.run_until_complete(again.stop())


NO_ML_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    import qasync
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    from tests.ui.app_harness import demo_config, make_app, until
    from trainer.config import parse_config

    tunedeck = make_app(Path(sys.argv[1]))
    tunedeck.window.show()

    async def run():
        await tunedeck.start()
        config = parse_config(demo_config(max_steps=4))
        job_id = await tunedeck.window.launch(config, "local")
        await until(lambda: tunedeck.store.require_job(job_id).is_final, 240, "the run's end")
        charts = tunedeck.window.job_view.charts

        def points():
            charts.redraw()
            return len(charts.plotted(job_id, "train_loss"))

        # metrics and the final alert travel separately: the last points may come after it
        await until(points, 30, "loss points on the chart")
        status = tunedeck.store.require_job(job_id).status
        n = points()
        await tunedeck.stop()
        return status, n

    status, points = loop.run_until_complete(run())
    loop.close()
    heavy = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "tokenizers",
             "safetensors")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    print(json.dumps({"status": status, "points": points, "loaded": loaded}))
    """
)


def test_the_gui_process_never_imports_the_ml_stack(tmp_path: Path, repo_root: Path) -> None:
    """The window opens and a local run of the tiny model finishes; the trainer ran in its own
    process, so none of the ML libraries may be in this one's sys.modules."""
    result = subprocess.run(
        [sys.executable, "-c", NO_ML_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo_root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed", result.stderr[-3000:]
    assert report["points"] > 0
    assert report["loaded"] == []
