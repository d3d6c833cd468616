"""Core callbacks from any thread arrive as Qt signals on the GUI thread, in order."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from app.ui.bridge import Bridge


def test_callbacks_from_a_worker_thread_arrive_on_the_gui_thread_in_order(qtbot) -> None:
    bridge = Bridge()
    seen: list[tuple[str, str, bool]] = []
    gui = QApplication.instance().thread()
    bridge.output_received.connect(
        lambda job, text: seen.append((job, text, QThread.currentThread() is gui))
    )

    def worker() -> None:
        for i in range(500):
            bridge.on_output("job-1", f"line {i}\n")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    qtbot.waitUntil(lambda: len(seen) == 500, timeout=5000)
    assert [text for _, text, _ in seen] == [f"line {i}\n" for i in range(500)]
    assert all(on_gui for _, _, on_gui in seen)


def test_a_callback_on_the_gui_thread_returns_before_any_slot_runs(qtbot) -> None:
    bridge = Bridge()
    got: list[object] = []
    bridge.metrics_received.connect(lambda job, points: got.append(points))
    bridge.on_metrics("j", [{"step": 1, "train_loss": 2.0}])
    assert got == []  # the core's call stack never runs widget code
    qtbot.waitUntil(lambda: got == [[{"step": 1, "train_loss": 2.0}]], timeout=2000)


def test_a_failing_slot_is_reported_and_does_not_stop_the_next_event(qtbot) -> None:
    bridge = Bridge()
    exits: list[object] = []

    def slot(job: str, code: object) -> None:
        exits.append(code)
        if code == 1:
            raise RuntimeError("a bug in a slot")

    bridge.job_exited.connect(slot)
    with qtbot.capture_exceptions() as raised:
        bridge.on_exit("j", 1)
        bridge.on_exit("j", 0)
        qtbot.waitUntil(lambda: exits == [1, 0], timeout=2000)
    assert [str(e[1]) for e in raised] == ["a bug in a slot"]
