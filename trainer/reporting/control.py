"""Run control: stop requests from signals and from the ``max_runtime`` clock.

- First SIGINT/SIGTERM (SIGBREAK on Windows): only a flag is set. The reporting callback sees
  it at the end of the current optimiser step and stops training there with a checkpoint.
- Second SIGINT/SIGTERM, at least ``REPEAT_GRACE_S`` after the first (copies of one request
  arriving together count once): the run exits at once (``os._exit(128 + signal)``) after a
  bounded, best-effort flush of what the sender still holds. No checkpoint.
- ``runtime.max_runtime_minutes``: a timer sends ``timeout_warning``
  ``runtime.timeout_warning_minutes`` before the limit (on time, even in the middle of a long step
  or evaluation); at the limit the callback stops at the end of the step, like a signal.

The clock starts when the reporting session starts (model loading counts: it is paid GPU time).
A resumed run starts a fresh clock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any


def stop_signals(module: object = signal) -> tuple[int, ...]:
    """SIGINT and SIGTERM, and on Windows SIGBREAK: there the launcher stops a trainer with
    CTRL_BREAK_EVENT sent to its process group (Windows has no SIGTERM between processes), and
    it arrives as SIGBREAK, which must mean the same clean stop with a checkpoint."""
    names = ("SIGINT", "SIGTERM", "SIGBREAK")
    return tuple(int(getattr(module, name)) for name in names if hasattr(module, name))


STOP_SIGNALS = stop_signals()
# Copies of one stop request arrive within milliseconds: the launcher signals the trainer's
# whole process group, and the trainer's own launcher and torchrun forward the signal to their
# workers too. Only a signal that comes this long after the first is a second request.
REPEAT_GRACE_S = 1.0


class RunControl:
    def __init__(
        self,
        *,
        max_runtime_s: float | None = None,
        warning_margin_s: float = 0.0,
        on_warning: Callable[[float], None] | None = None,
        on_emergency_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.max_runtime_s = max_runtime_s
        self.warning_margin_s = warning_margin_s
        self.signal_received: int | None = None
        self.warning_sent = False
        self._on_warning = on_warning
        self._on_emergency_exit = on_emergency_exit
        self._signal_count = 0
        self._first_signal_at = 0.0
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None
        self._warning_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def install(self) -> None:
        """Take over SIGINT/SIGTERM (main thread only) and start the runtime clock's timer."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        if self.max_runtime_s is not None:
            delay = max(0.0, self.max_runtime_s - self.warning_margin_s - self.elapsed())
            self._timer = threading.Timer(delay, self.send_warning)
            self._timer.daemon = True
            self._timer.start()

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        self._previous.clear()

    # -- queries -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop_reason(self) -> str | None:
        """``"cancelled"`` after a signal, ``"timeout"`` past max_runtime, else None. Cheap."""
        if self.signal_received is not None:
            return "cancelled"
        if self.max_runtime_s is not None and self.elapsed() >= self.max_runtime_s:
            self.send_warning()  # never stop on the clock without having warned
            return "timeout"
        return None

    def send_warning(self) -> None:
        with self._warning_lock:
            if self.warning_sent:
                return
            self.warning_sent = True
        if self._on_warning is not None and self.max_runtime_s is not None:
            self._on_warning(max(0.0, self.max_runtime_s - self.elapsed()))

    # -- the handler -------------------------------------------------------------------------

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        name = signal.Signals(signum).name
        if self._signal_count and now - self._first_signal_at < REPEAT_GRACE_S:
            return  # another copy of the same request
        self._signal_count += 1
        if self._signal_count == 1:
            self._first_signal_at = now
            self.signal_received = signum
            # os.write, not logging: a signal handler must not take locks the main thread holds
            _say(
                f"tunedeck: {name} received; stopping after the current step with a checkpoint "
                f"(send it again to exit at once without one)\n"
            )
            return
        _say(f"tunedeck: second {name}; exiting now without a checkpoint\n")
        code = 128 + signum
        if self._on_emergency_exit is not None:
            with contextlib.suppress(Exception):
                self._on_emergency_exit(code)
        os._exit(code)


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
