"""Run a blocking call on a worker thread and get its outcome back on the GUI thread.

Keyring calls (up to their time limit), credential checks over HTTP and the training-Python
check all block; the Settings dialog must stay responsive meanwhile. A queued Qt signal carries
each finished future back to the thread the runner lives in, where its callback runs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)


class OffThread(QObject):
    """``run(fn, on_done)``: fn runs on a worker; ``on_done(future)`` runs on this object's thread.

    ``busy`` says whether anything is still running. ``shutdown()`` drops callbacks that have
    not run yet (a closed dialog must not be touched by a late answer).
    """

    _finished = Signal(int, object)

    def __init__(self, parent: QObject | None = None, *, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tunedeck-ui")
        self._callbacks: dict[int, Callable[[Future[Any]], None]] = {}
        self._ids = itertools.count()
        self._finished.connect(self._deliver)

    @property
    def busy(self) -> bool:
        return bool(self._callbacks)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Future[Any]], None]) -> None:
        call_id = next(self._ids)
        self._callbacks[call_id] = on_done
        future = self._pool.submit(fn)
        future.add_done_callback(lambda f: self._emit(call_id, f))

    def shutdown(self) -> None:
        self._callbacks.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _emit(self, call_id: int, future: Future[Any]) -> None:
        # RuntimeError: the QObject is gone (dialog closed and deleted); nobody wants the answer
        with contextlib.suppress(RuntimeError):
            self._finished.emit(call_id, future)

    @Slot(int, object)
    def _deliver(self, call_id: int, future: Future[Any]) -> None:
        callback = self._callbacks.pop(call_id, None)
        if callback is None:
            return
        try:
            callback(future)
        except Exception:  # a bug in a callback; the dialog keeps working
            log.exception("callback for a background call failed")
