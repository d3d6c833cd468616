"""The log view (bursts coalesced, carriage returns) and the alert list."""

from __future__ import annotations

from app.ui.alerts_view import AlertsView
from app.ui.log_view import FLUSH_MS, LogView


def test_log_output_is_appended_in_bursts_and_progress_bars_rewrite_their_line(qtbot) -> None:
    view = LogView()
    qtbot.addWidget(view)
    view.set_text("loading model\n")
    view.append_output("step 1/3\r")
    view.append_output("step 2/3\r")
    view.append_output("step 3/3\ndone\n")
    assert view.toPlainText() == "loading model\n"  # not yet: one append per burst
    qtbot.wait(FLUSH_MS * 3)
    assert view.toPlainText() == "loading model\nstep 3/3\ndone\n"


def test_alerts_are_listed_with_their_title_and_advice(qtbot) -> None:
    view = AlertsView()
    qtbot.addWidget(view)
    view.alerts.reset([{"type": "job_started", "job_id": "j", "received_at": 1_700_000_000.0}])
    view.alerts.append(
        {"type": "gpu_oom", "job_id": "j", "error_message": "CUDA out of memory", "current_step": 7}
    )
    model = view.model()
    assert model.rowCount() == 2
    assert model.index(0, 1).data() == "Training started"
    details = model.index(1, 2).data()
    assert "CUDA out of memory" in details and "batch size" in details
    assert model.index(1, 1).data(9).name() == "#c0392b"  # ForegroundRole: severe in red
