"""A simulated pod: the pod's start command run as a local process, as a container would.

The command runs through ``/bin/sh -c`` in a new session (its own process group) with the pod's
environment. Every process of the pod carries a marker variable, so that processes which left
the group (a trainer started in a session of its own) are still found and killed with the pod,
as a container's cgroup would be. When the main process ends, the "container" stops: whatever is
left of it is killed. Linux: the marker scan reads /proc; elsewhere only the group is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

MARKER_VARIABLE = "TUNEDECK_SIM_POD"
# What a pod image would provide anyway, plus the test suite's isolation settings.
INHERITED_VARIABLES = (
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY",
    "TRL_EXPERIMENTAL_SILENCE",
    "TOKENIZERS_PARALLELISM",
    "OMP_NUM_THREADS",
    "TUNEDECK_TORCH_THREADS",
    "TUNEDECK_CACHE_DIR",
)
KILL_GRACE_S = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_environment() -> dict[str, str]:
    """A pod's environment before the request's: this test environment's python first on
    PATH (the pod image's python, with the trainer importable), nothing else of this process."""
    env = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return env


class SimulatedPod:
    def __init__(self, command: str, env: Mapping[str, str], workdir: Path, marker: str) -> None:
        self.command = command
        self.marker = marker
        self.workdir = workdir
        self.log_path = workdir / "container.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {**env, MARKER_VARIABLE: marker}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                env=self.env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ended_at: float | None = None

    @property
    def main_alive(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> list[int]:
        """Every live process of this pod (main process included)."""
        found = {self.process.pid} if self.main_alive else set()
        proc = Path("/proc")
        if not proc.is_dir():
            return sorted(found)
        needle = f"{MARKER_VARIABLE}={self.marker}".encode()
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
        return sorted(found)

    def alive(self) -> bool:
        return bool(self.pids())

    def kill(self) -> None:
        """SIGTERM to the group and every marked process, SIGKILL to what is left after a grace
        time; returns when none is left (or gave up after a SIGKILL round)."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.05)
        if self.alive():
            self._signal(signal.SIGKILL)
            deadline = time.monotonic() + KILL_GRACE_S
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        if self.ended_at is None:
            self.ended_at = time.time()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def log_lines(self, tail: int) -> list[str]:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        lines = text.splitlines()
        return lines[-tail:] if tail else []
