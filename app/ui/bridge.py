"""The one place where asyncio, threads and Qt meet.

app.core reports what happens through plain callbacks (``Ingestor.subscribe``, a launcher's
``on_output`` and ``on_exit``), called from wherever the core happens to be: a handler on the
qasync loop, a reader thread of a subprocess. Widgets must only be touched from the GUI thread,
and never from inside the core's own call stack (a slow widget would hold up ingest). So every
callback here only *queues* a call; Qt runs it on the GUI thread in its next event-loop turn,
where the public signals are emitted.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)


class Bridge(QObject):
    """Core callbacks in (any thread), Qt signals out (GUI thread)."""

    metrics_received = Signal(str, object)  # job_id, list of metric point dicts
    alert_received = Signal(str, object)  # job_id, alert dict
    job_changed = Signal(str)  # job_id: its row in the store changed (status, times, loss)
    output_received = Signal(str, str)  # job_id, text as the trainer wrote it
    job_exited = Signal(str, object)  # job_id, exit code (None when unknown)

    _queued = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Queued even when the caller is on the GUI thread: the core's call returns at once.
        self._queued.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the GUI thread soon. Safe from any thread."""
        # RuntimeError: the bridge is gone (the app is closing) and nobody is left to tell
        with contextlib.suppress(RuntimeError):
            self._queued.emit(functools.partial(fn, *args))

    @Slot(object)
    def _run(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception:  # a bug in a slot must not stop the next event
            log.exception("GUI update failed")

    # -- callbacks to hand to app.core ---------------------------------------------------------

    def on_metrics(self, job_id: str, points: list[Mapping[str, Any]]) -> None:
        self.post(self.metrics_received.emit, job_id, [dict(p) for p in points])

    def on_alert(self, job_id: str, alert: Mapping[str, Any]) -> None:
        self.post(self.alert_received.emit, job_id, dict(alert))

    def on_job_changed(self, job_id: str) -> None:
        self.post(self.job_changed.emit, job_id)

    def on_output(self, job_id: str, text: str) -> None:
        self.post(self.output_received.emit, job_id, text)

    def on_exit(self, job_id: str, code: int | None) -> None:
        self.post(self.job_exited.emit, job_id, code)
