"""Whether a process the tests started is still running."""

from __future__ import annotations

from pathlib import Path


def running(pid: int) -> bool:
    """Alive and not a zombie: a killed child its parent has not reaped (or an orphan waiting
    for a PID 1 that never reaps it) still answers ``kill(pid, 0)``. Linux (/proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
