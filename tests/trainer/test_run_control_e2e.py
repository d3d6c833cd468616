"""The trainer as the app runs it: ``python -m trainer`` in a subprocess with the contract's
environment, reporting to the app's own receiver (app.core.receiver) on 127.0.0.1, with its
real SQLite store and ingest path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.live_receiver import LiveReceiver
from trainer.events import EVENT_LOG_NAME
from trainer.reporting.event_log import iter_events

REPO = Path(__file__).resolve().parents[2]
STEPS = 60


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Count from {i}."},
                {"role": "assistant", "content": f"{i} {i + 1} {i + 2}."},
            ]
        }
        for i in range(40)
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg: dict[str, Any] = {
        "name": "e2e",
        "model": {"name_or_path": "builtin:tiny-llama"},
        "dataset": {"path": str(data), "eval_fraction": 0.0},
        "training": {"max_steps": STEPS, "per_device_train_batch_size": 2, "max_length": 48},
        "logging": {"logging_steps": 5},
        "checkpoint": {"save_strategy": "steps", "save_steps": 1000},
        "output": {"output_dir": str(tmp_path / "out")},
        "runtime": {"device": "cpu"},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(cfg))
    return path


def start_trainer(config: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    full_env.pop("WORLD_SIZE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", "--config", str(config), "--execution-id", "e2e"],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def logged_steps(out: Path) -> list[int]:
    return [e["data"]["step"] for e in iter_events(out / EVENT_LOG_NAME) if e["kind"] == "metric"]


def wait_for(predicate: Any, proc: subprocess.Popen[str], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> int:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, 3), err[-3000:]
    return proc.returncode


@pytest.mark.slow
def test_sigterm_mid_run_then_resume_reaches_the_planned_step(
    tmp_path: Path, receiver: LiveReceiver
) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path)
    job_id, env = receiver.job.id, receiver.env()
    proc = start_trainer(config, env, tmp_path)
    wait_for(lambda: len(logged_steps(out)) >= 3, proc, 90)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0
    [checkpoint] = list(out.glob("checkpoint-*"))
    stopped_at = int(checkpoint.name.split("-")[1])
    assert 0 < stopped_at < STEPS
    assert not (out / "adapter_model.safetensors").exists()  # no final save on a cancel
    job = receiver.store.require_job(job_id)
    assert job.status == "cancelled"
    cancels = [a for a in receiver.store.alerts(job_id) if a["type"] == "job_cancelled"]
    assert len(cancels) == 1 and cancels[0]["current_step"] == stopped_at

    receiver.store.reopen_job(job_id)  # what the app does to resume a job
    cfg = json.loads(config.read_text())
    cfg["checkpoint"]["resume_from_checkpoint"] = "latest"
    config.write_text(json.dumps(cfg))
    assert finish(start_trainer(config, env, tmp_path)) == 0

    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == STEPS and summary["resumed_from_step"] == stopped_at
    assert (out / "adapter_model.safetensors").is_file()
    assert receiver.store.require_job(job_id).status == "completed"
    steps = logged_steps(out)
    assert len(steps) == len(set(steps))  # no step reported (or trained) twice
    assert steps[-1] == STEPS
    arrivals = Counter(p["step"] for p in receiver.points())
    assert arrivals == Counter(steps)  # the app got each point exactly once
    seqs = [e["seq"] for e in iter_events(out / EVENT_LOG_NAME)]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.slow
def test_receiver_down_for_the_first_half_then_up_gets_every_point_once(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    out = tmp_path / "out"  # the receiver is not listening yet
    config = write_config(tmp_path)
    job_id, env = app_receiver.job.id, app_receiver.env()
    proc = start_trainer(config, env, tmp_path)
    wait_for(lambda: len(logged_steps(out)) >= STEPS // 10, proc, 90)  # half the points
    app_receiver.start()
    assert finish(proc) == 0
    steps = logged_steps(out)
    assert steps[-1] == STEPS
    arrivals = Counter(p["step"] for p in app_receiver.points())
    assert arrivals == Counter(steps)  # each exactly once, none lost
    assert app_receiver.store.require_job(job_id).status == "completed"
    types = [a["type"] for a in app_receiver.store.alerts(job_id)]
    assert types == ["job_started", "job_completed"]


@pytest.mark.slow
def test_max_runtime_warns_then_stops_with_a_checkpoint(
    tmp_path: Path, receiver: LiveReceiver
) -> None:
    out = tmp_path / "out"
    config = write_config(
        tmp_path,
        training={"max_steps": 1_000_000},
        runtime={"max_runtime_minutes": 0.1, "timeout_warning_minutes": 0.05},  # 6 s, 3 s
    )
    job_id, env = receiver.job.id, receiver.env()
    assert finish(start_trainer(config, env, tmp_path)) == 0
    [checkpoint] = list(out.glob("checkpoint-*"))
    assert (checkpoint / "trainer_state.json").is_file()
    alerts = receiver.store.alerts(job_id)
    # max_runtime counts from the start of the process: on a busy machine the warning can come
    # while the model is still loading, before job_started
    assert sorted(a["type"] for a in alerts[:2]) == ["job_started", "timeout_warning"]
    assert [a["type"] for a in alerts[2:]] == ["job_cancelled"]
    assert alerts[2]["status"] == "timeout"
    assert alerts[2]["current_step"] == int(checkpoint.name.split("-")[1])
    assert receiver.store.require_job(job_id).status == "cancelled"


@pytest.mark.slow
def test_a_two_process_run_cancelled_by_its_process_group_stops_cleanly(
    tmp_path: Path, receiver: LiveReceiver
) -> None:
    """What the app's launcher does: SIGTERM to the trainer's whole process group (the trainer,
    torchrun and both workers, which may also get copies forwarded by torchrun). Both workers
    must stop at the same step, save, and the job end cancelled with exit status 0."""
    out = tmp_path / "out"
    config = write_config(tmp_path, training={"max_steps": 400}, runtime={"num_processes": 2})
    job_id, env = receiver.job.id, receiver.env()
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    full_env.pop("WORLD_SIZE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "--config", str(config), "--execution-id", "mp"],
        cwd=tmp_path,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for(lambda: len(logged_steps(out)) >= 3, proc, 120)
    os.killpg(proc.pid, signal.SIGTERM)
    assert finish(proc) == 0
    [checkpoint] = list(out.glob("checkpoint-*"))
    assert (checkpoint / "trainer_state.json").is_file()
    types = [a["type"] for a in receiver.store.alerts(job_id)]
    assert types == ["job_started", "job_cancelled"]
    assert receiver.store.require_job(job_id).status == "cancelled"
