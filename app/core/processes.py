"""Is a recorded trainer process still the same process? (pid + start time, not reuse).

A pid alone is not enough after a restart of the app: the system may have given it to another
program. The process's start time, recorded when the trainer started, tells them apart.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# signal.CTRL_BREAK_EVENT exists only on Windows; its value is fixed by the Windows API
CTRL_BREAK_EVENT = 1


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None when there is no such process.

    On Linux from /proc, precise enough to tell a reused pid from the original; elsewhere only
    whether the pid exists (then 0.0).
    """
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields_after_name = stat.read_text().rsplit(")", 1)[1].split()
            ticks = int(fields_after_name[19])  # field 22 of stat: starttime, in clock ticks
            return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0.0
    return 0.0


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def same_process(pid: int, started_at: float | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started_at`` (not a reuse)."""
    now_started = process_start_time(pid)
    if now_started is None:
        return False
    if not started_at or not now_started:
        return True  # nothing to compare with: trust the pid
    if _is_zombie(pid):
        return False
    return abs(now_started - started_at) < 1.0


def _is_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def signal_group(pid: int, *, hard: bool = False) -> None:
    """Stop a trainer started in its own session (POSIX) or process group (Windows), with
    everything it started: ``hard=False`` asks for a clean stop with a checkpoint, ``hard=True``
    kills.

    POSIX: SIGTERM, then SIGKILL, to the process group. Windows: CTRL_BREAK_EVENT to the group
    (the trainer was started with CREATE_NEW_PROCESS_GROUP and handles SIGBREAK like SIGTERM);
    the hard stop is TerminateProcess (what ``os.kill`` does there with any other value).
    """
    try:
        if sys.platform != "win32":
            os.killpg(pid, signal.SIGKILL if hard else signal.SIGTERM)
        elif hard:
            os.kill(pid, signal.SIGTERM)
        else:
            try:
                os.kill(pid, CTRL_BREAK_EVENT)
            except ProcessLookupError:
                raise
            except OSError:
                # GenerateConsoleCtrlEvent needs a console shared with the trainer; without
                # one no clean stop can be asked for, and waiting would only delay the kill
                os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
