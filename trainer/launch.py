"""Running the same trainer command in several processes (one per GPU, or two on a CPU for tests).

On GPUs the command goes through ``accelerate launch`` (DDP, or FSDP/DeepSpeed from an
accelerate config). On a CPU it goes through ``torchrun``: ``accelerate launch --cpu
--num_processes 2`` silently ran ONE process here (see NOTES.md), while torchrun gives each
worker RANK and WORLD_SIZE and TRL then trains with DDP over gloo.
"""

from __future__ import annotations

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


def relaunch(command: list[str]) -> int:
    """Run ``command``, passing SIGINT/SIGTERM on to it (so workers save and stop cleanly)."""
    proc = subprocess.Popen(command)

    def forward(signum: int, _frame: FrameType | None) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
