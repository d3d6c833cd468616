"""Running the same trainer command in several processes (one per GPU, or two on a CPU for tests).

On GPUs the command goes through ``accelerate launch`` (DDP, or FSDP/DeepSpeed from an
accelerate config). On a CPU it goes through ``torchrun``: ``accelerate launch --cpu
--num_processes 2`` silently ran ONE process here (see NOTES.md), while torchrun gives each
worker RANK and WORLD_SIZE and TRL then trains with DDP over gloo.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType


def inside_launch() -> bool:
    """True in a worker started by torchrun/accelerate (they set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def _use_gpus(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def launch_command(
    config_path: Path,
    execution_id: str,
    num_processes: int,
    *,
    device: str = "auto",
    accelerate_config: str | None = None,
) -> list[str]:
    """The command that runs ``python -m trainer`` once per process."""
    trainer_args = ["-m", "trainer", "--config", str(config_path), "--execution-id", execution_id]
    if _use_gpus(device):
        cmd = [sys.executable, "-m", "accelerate.commands.launch"]
        if accelerate_config:
            cmd += ["--config_file", accelerate_config]
        else:
            cmd += ["--multi_gpu"]
        return [*cmd, "--num_processes", str(num_processes), *trainer_args]
    # --standalone: a local rendezvous on a free port, so parallel test runs do not collide
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(num_processes),
        *trainer_args,
    ]


def worker_pids(launcher_pid: int) -> list[int]:
    """The launcher's child processes (its workers), from /proc; empty where there is none."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the name in field 2 may hold spaces: the parent pid comes after its closing ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and len(fields) > 1 and int(fields[1]) == launcher_pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def relaunch(command: list[str]) -> int:
    """Run ``command``; a SIGINT/SIGTERM to this process reaches each worker exactly once.

    Signalled themselves, torchrun and accelerate raise, kill their workers after a grace
    period and exit non-zero. Signalled one by one, the workers finish their step, save a
    checkpoint, report job_cancelled and exit 0, and so does the launcher. The launcher runs in
    a session of its own so that Ctrl-C in a terminal does not reach the workers a second time
    (a second signal means "stop now, without a checkpoint" to the run control)."""
    proc = subprocess.Popen(command, start_new_session=True)

    def forward(signum: int, _frame: FrameType | None) -> None:
        targets = worker_pids(proc.pid) or [proc.pid]
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
