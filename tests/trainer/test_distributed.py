"""Two processes on a CPU: the run re-executes itself through torchrun and trains with DDP over
gloo. NOTES.md: `accelerate launch --cpu --num_processes 2` silently ran ONE process here, so
the test checks the world size the workers saw, not the launcher's flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def write_run(tmp_path: Path, **training: Any) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Count {i}."},
                {"role": "assistant", "content": f"{i} {i + 1}."},
            ]
        }
        for i in range(16)
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "name": "ddp",
                "model": {"name_or_path": "builtin:tiny-llama"},
                "dataset": {"path": str(data), "eval_fraction": 0.0},
                "training": {
                    "num_train_epochs": 1,
                    "per_device_train_batch_size": 2,
                    "max_length": 32,
                    **training,
                },
                "checkpoint": {"save_strategy": "steps", "save_steps": 10_000},
                "logging": {"logging_steps": 1},
                "output": {"output_dir": str(tmp_path / "out")},
            }
        )
    )
    return cfg


def command(cfg: Path) -> list[str]:
    args = ["--config", str(cfg), "--execution-id", "ddp", "--num-processes", "2"]
    return [sys.executable, "-m", "trainer", *args]


def environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow
def test_two_cpu_processes_train_one_run_together(tmp_path: Path) -> None:
    cfg = write_run(tmp_path)
    done = subprocess.run(
        command(cfg), cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["world_size"] == 2
    # 16 rows, 2 per process per step, 2 processes: each step consumes 4 rows
    assert summary["global_step"] == 4
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_sigterm_to_a_two_process_run_stops_both_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    cfg = write_run(tmp_path, max_steps=100_000)
    log = tmp_path / "out" / "events.jsonl"
    proc = subprocess.Popen(
        command(cfg),
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and '"step":3,' in log.read_text():
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-3000:]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    alerts = [e["data"]["type"] for e in events if e["kind"] == "alert"]
    assert alerts == ["job_started", "job_cancelled"]  # once, from rank 0
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["stop_reason"] == "cancelled"
    assert (tmp_path / "out" / f"checkpoint-{summary['global_step']}").is_dir()
