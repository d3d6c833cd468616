"""Two processes on a CPU: the run re-executes itself through torchrun and trains with DDP over
gloo. NOTES.md: `accelerate launch --cpu --num_processes 2` silently ran ONE process here, so
the test checks the world size the workers saw, not the launcher's flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_cpu_processes_train_one_run_together(tmp_path: Path) -> None:
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
                },
                "checkpoint": {"save_strategy": "no"},
                "logging": {"logging_steps": 1},
                "output": {"output_dir": str(tmp_path / "out")},
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "--config",
            str(cfg),
            "--execution-id",
            "ddp",
            "--num-processes",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    assert summary["world_size"] == 2
    # 16 rows, 2 per process per step, 2 processes: each step consumes 4 rows
    assert summary["global_step"] == 4
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
