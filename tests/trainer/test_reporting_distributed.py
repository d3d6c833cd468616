"""Two processes (torchrun, DDP over gloo on the CPU): only rank 0 reports, and a stop signal
that reaches one rank stops both at the same step (otherwise the other would hang in DDP)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.trainer.live_receiver import LiveReceiver
from trainer.events import EVENT_LOG_NAME
from trainer.reporting.event_log import iter_events

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from transformers import TrainerCallback
from tests.trainer.reporting_runs import run_config, session_run

class SignalRankZero(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 2 and os.environ["RANK"] == "0" and not hasattr(self, "sent"):
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)  # the other rank never gets a signal

model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = run_config(model_dir, out, training={"max_steps": 6}, logging={"logging_steps": 1},
                 checkpoint={"save_steps": 100}, evaluation={"strategy": "no"})
run = session_run(cfg, model_dir, out, extra_callbacks=[SignalRankZero()])
if run.error is not None:
    raise run.error
# a file per rank: on a shared stdout another process's progress bar can run into the line
Path(out.parent / f"rank-{os.environ['RANK']}.txt").write_text(
    f"rank {os.environ['RANK']} world {os.environ['WORLD_SIZE']} "
    f"step {run.trainer.state.global_step} stop {run.session.stop_reason}")
sys.exit(run.session.exit_code)
"""


@pytest.mark.slow
def test_only_rank_zero_reports_and_a_stop_reaches_every_rank(
    tiny_model_dir: Path, tmp_path: Path, receiver: LiveReceiver
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    env = {**os.environ, **receiver.env(), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tiny_model_dir),
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = sorted(f.read_text() for f in tmp_path.glob("rank-*.txt"))
    # rank 1 was never signalled, yet it stopped at the same step, cleanly
    assert lines == [
        "rank 0 world 2 step 3 stop cancelled",
        "rank 1 world 2 step 3 stop cancelled",
    ]
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()
    assert [a["type"] for a in receiver.alerts()] == ["job_started", "job_cancelled"]
    steps = Counter(p["step"] for p in receiver.points())
    assert sorted(steps) == [1, 2, 3] and max(steps.values()) == 1  # one reporter, not two
    logged = [e["data"] for e in iter_events(out / EVENT_LOG_NAME) if e["kind"] == "metric"]
    assert [p["step"] for p in logged] == [1, 2, 3]  # one event log, written by rank 0
    assert all(p["samples_per_second"] > 0 for p in logged)
