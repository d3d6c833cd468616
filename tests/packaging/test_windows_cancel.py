"""Cancel on Windows: the trainer starts in its own process group and gets CTRL_BREAK, which it
handles like SIGTERM. No Windows here: the platform check is switched and the system calls
recorded; the POSIX path runs for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.core import processes
from app.core.launcher_local import LocalLauncher
from app.core.store import Store
from trainer.reporting.control import STOP_SIGNALS, RunControl, stop_signals


def test_the_trainer_treats_sigbreak_as_a_stop_request() -> None:
    windows_signal = SimpleNamespace(SIGINT=2, SIGTERM=15, SIGBREAK=21)
    assert stop_signals(windows_signal) == (2, 15, 21)
    assert stop_signals(SimpleNamespace(SIGINT=2, SIGTERM=15)) == (2, 15)
    assert STOP_SIGNALS == (signal.SIGINT, signal.SIGTERM)  # Linux has no SIGBREAK


def test_a_sigbreak_handler_stops_cleanly_like_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler RunControl installs for every stop signal sets the clean-stop flag."""
    control = RunControl()
    control._handle(int(signal.SIGTERM), None)
    assert control.stop_reason() == "cancelled" and control.signal_received == signal.SIGTERM


def test_windows_cancel_sends_ctrl_break_then_terminates(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append(("killpg", pid, sig)))
    with monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        processes.signal_group(4242)
        processes.signal_group(4242, hard=True)
    processes.signal_group(4242)
    processes.signal_group(4242, hard=True)
    assert sent == [
        ("kill", 4242, processes.CTRL_BREAK_EVENT),
        ("kill", 4242, signal.SIGTERM),  # os.kill on Windows: TerminateProcess
        ("killpg", 4242, signal.SIGTERM),
        ("killpg", 4242, signal.SIGKILL),
    ]


def test_windows_without_a_shared_console_terminates(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []

    def kill(pid: int, sig: int) -> None:
        sent.append(sig)
        if sig == processes.CTRL_BREAK_EVENT:
            raise OSError(6, "The handle is invalid")  # what a process without a console gets

    monkeypatch.setattr(os, "kill", kill)
    with monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        processes.signal_group(4242)
    assert sent == [processes.CTRL_BREAK_EVENT, signal.SIGTERM]


def test_on_windows_the_launcher_starts_the_trainer_in_a_new_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}

    def popen(command: list[str], **kwargs: Any) -> Any:
        started.update(kwargs, command=command)
        return SimpleNamespace(pid=1)

    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200, raising=False)
    monkeypatch.setattr(subprocess, "Popen", popen)
    launcher = LocalLauncher(Store(tmp_path / "s.sqlite3"))
    with (tmp_path / "log").open("wb") as log, monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        launcher._spawn(["python", "-m", "trainer"], {}, log, tmp_path)
    assert started["creationflags"] == 0x200 and started["start_new_session"] is False


def test_posix_cancel_reaches_the_whole_group_for_real(tmp_path: Path) -> None:
    """A parent and its child in their own session both get the clean stop."""
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True, text=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    processes.signal_group(proc.pid)
    assert proc.wait(10) == -signal.SIGTERM
    deadline = time.monotonic() + 10
    while processes.process_start_time(child) is not None and time.monotonic() < deadline:
        if processes._is_zombie(child):
            break
        time.sleep(0.05)
    assert processes.process_start_time(child) is None or processes._is_zombie(child)
