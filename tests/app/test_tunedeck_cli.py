"""`tunedeck run | resume | jobs | export` as a user runs them: a subprocess, output read from a
pipe."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_jobs import FAKE_TRAINER

from app.core.jobs import Job
from app.core.store import Store

TUNEDECK = [sys.executable, "-m", "app.cli"]
REPO = Path(__file__).resolve().parents[2]


def fake_python(tmp_path: Path) -> Path:
    """A 'training Python' that runs the fake trainer where the real one would run the trainer
    (`python -m trainer --config ...` -> `python fake_trainer.py --config ...`)."""
    script = tmp_path / "fake-python"
    script.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{FAKE_TRAINER}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def write_config(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"name": "cli-run", "method": "sft", **extra}))
    return path


def tunedeck(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TUNEDECK, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_then_jobs_then_export(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, model={"name_or_path": "builtin:tiny-llama"})
    done = tunedeck(
        "run", str(cfg), "--python", str(fake_python(tmp_path)), cwd=tmp_path, FAKE_STEPS="20"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b[" not in out  # no colour codes or cursor moves in a pipe
    assert "[alert] Training started: cli-run" in out
    assert "step 20/20  loss 0.1000  eta 0:00:00" in out
    assert "(cli-run): completed" in out and "exit status 0" in out

    with Store() as store:
        [job] = store.list_jobs()
        # the planner's estimate, as for a run launched from the window (the job view shows it)
        plan = store.job_plan(job.id)
    assert plan is not None and plan["planned_peak_gb"] > 0
    listed = tunedeck("jobs", cwd=tmp_path)
    assert job.id in listed.stdout and "completed" in listed.stdout and "20/20" in listed.stdout

    exported = tunedeck("export", job.id[:-2], "--csv", cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert float(rows[-1]["train_loss"]) == pytest.approx(0.1)
    assert rows[0]["x"] == "1"  # an extra field the trainer sent, as its own column
    assert exported.stdout.splitlines()[0].startswith("job_id,job,step,epoch,train_loss,eval_loss")
    assert rows[0]["job_id"] == job.id and rows[0]["job"] == "cli-run"
    target = tmp_path / "m.json"
    tunedeck("export", job.id, "--json", "-o", str(target), cwd=tmp_path)
    saved = json.loads(target.read_text())
    assert len(saved["metrics"]) == 20 and saved["alerts"][-1]["type"] == "job_completed"


def test_ctrl_c_cancels_the_run_cleanly(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    proc = subprocess.Popen(
        [*TUNEDECK, "run", str(cfg), "--python", str(fake_python(tmp_path)), "-v"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "FAKE_STEPS": "3000", "FAKE_STEP_S": "0.01"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    for line in proc.stdout:  # until the trainer is past a few steps
        lines.append(line)
        if "step 20/3000" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "stopping; the trainer saves a checkpoint" in out
    assert "checkpoint saved" in out  # the trainer's own output (-v)
    assert "): cancelled" in out
    with Store() as store:
        [job] = store.list_jobs()
    assert job.status == "cancelled" and 20 <= (job.current_step or 0) < 3000


def test_a_config_error_names_the_field_and_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, training={"learning_rate": -1})
    done = tunedeck("run", str(cfg), cwd=tmp_path)
    assert done.returncode == 2
    assert "training.learning_rate" in done.stderr and "Traceback" not in done.stderr


def test_export_of_an_unknown_job(tmp_path: Path) -> None:
    done = tunedeck("export", "no-such-job", "--csv", cwd=tmp_path)
    assert done.returncode == 2 and "no job 'no-such-job'" in done.stderr
    assert "tunedeck jobs" in done.stderr  # the hint


def test_a_trainer_failure_is_the_runs_exit_status(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    done = tunedeck(
        "run",
        str(cfg),
        "--python",
        str(fake_python(tmp_path)),
        cwd=tmp_path,
        FAKE_STEPS="10",
        FAKE_MODE="crash",
    )
    assert done.returncode == 1
    assert "): failed" in done.stdout and "RuntimeError: boom" in done.stdout


def test_plain_progress_lines_and_eta(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from app.cli import RunDisplay
    from app.core.ingest import IngestEvent

    job = store.create_job(name="eta", method="sft", model="m", total_steps=100)
    out = io.StringIO()
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    display = RunDisplay(job, Console(file=out, force_terminal=False, width=200))
    assert not display.fancy

    def batch(first: int, last: int) -> IngestEvent:
        points = tuple({"step": s, "train_loss": 10.0 / s} for s in range(first, last + 1))
        return IngestEvent("metrics", job.id, points=points)

    with display:
        display.event(batch(1, 20))  # a first batch arrives at once: no rate yet
        now[0] += 10
        display.event(batch(21, 40))  # 20 steps in 10 s: 60 left take 30 s
        now[0] += 1
        display.event(batch(41, 42))  # within 5 s of the last line: not shown
        display.event(IngestEvent("metrics", "another-job", points=({"step": 99},)))
    lines = out.getvalue().splitlines()
    assert lines == ["step 20/100  loss 0.5000  eta -", "step 40/100  loss 0.2500  eta 0:00:30"]


def test_a_cli_run_gets_the_hub_token_dataset_url_and_repo_and_logs_no_secret(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "trainer-env.json"
    cfg = write_config(
        tmp_path,
        dataset={"path": "https://data.example/rows.jsonl"},
        output={"push_to_hub": True, "hub_repo": "ada/tiny"},
    )
    done = tunedeck(
        "run",
        str(cfg),
        "--python",
        str(fake_python(tmp_path)),
        cwd=tmp_path,
        FAKE_STEPS="2",
        FAKE_ENV_DUMP=str(dump),
        HF_TOKEN="hf_users_own_SECRET",  # no keyring here: the user's own token is used
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(dump.read_text())
    assert env["HF_TOKEN"] == "hf_users_own_SECRET"
    assert env["DATASET_URL"] == "https://data.example/rows.jsonl"
    assert env["HF_REPO_NAME"] == "ada/tiny"
    with Store() as store:
        [job] = store.list_jobs()
    assert job.log_path is not None
    log_text = Path(job.log_path).read_text()
    assert "HF_TOKEN=***" in log_text and "DATASET_URL=https://data.example/rows.jsonl" in log_text
    for secret in ("hf_users_own_SECRET", env["JOB_TOKEN"], env["INTERNAL_API_KEY"]):
        assert secret not in log_text and secret not in done.stdout + done.stderr
        assert secret not in job.config_json


def test_a_run_into_an_output_folder_in_use_is_refused_with_the_other_job_named(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, output={"output_dir": str(tmp_path / "shared")})
    first = subprocess.Popen(
        [*TUNEDECK, "run", str(cfg), "--python", str(fake_python(tmp_path))],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "FAKE_STEPS": "3000", "FAKE_STEP_S": "0.01"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        running = _wait_for_job(lambda job: (job.current_step or 0) >= 2)
        second = tunedeck("run", str(cfg), "--python", str(fake_python(tmp_path)), cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert second.returncode == 2
    assert f"job {running.id} (cli-run) is running and writes to {tmp_path / 'shared'}" in (
        second.stderr
    )
    assert "hint: Choose another output folder (output.output_dir)" in second.stderr
    with Store() as store:
        refused = [j for j in store.list_jobs() if j.id != running.id]
    assert [j.status for j in refused] == ["failed"]  # not left queued


def _wait_for_job(
    condition: Callable[[Job], bool], timeout: float = 120, *, fail_if_ended: bool = True
) -> Job:
    """The only job in the store, once ``condition`` holds for it (with ``fail_if_ended``, a job
    that ended without it fails at once, with its error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Store() as store:
            jobs = store.list_jobs()
        if len(jobs) == 1 and condition(jobs[0]):
            return jobs[0]
        if fail_if_ended and len(jobs) == 1 and jobs[0].is_final:
            raise AssertionError(f"the job ended {jobs[0].status}: {jobs[0].error}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for the job: {jobs}")


def _real_run_config(folder: Path) -> Path:
    """A real tiny SFT run with a relative output folder (the default's form) and a checkpoint
    only when it is stopped."""
    path = folder / "tiny.json"
    path.write_text(
        json.dumps(
            {
                "name": "tiny-resume",
                "method": "sft",
                "model": {"name_or_path": "builtin:tiny-llama"},
                "dataset": {"path": "resources/datasets/demo-chat.jsonl", "eval_fraction": 0.0},
                "adapter": {"kind": "full"},
                "training": {
                    "max_steps": 400,
                    "per_device_train_batch_size": 2,
                    "max_length": 64,
                },
                "evaluation": {"strategy": "no"},
                "checkpoint": {"save_steps": 10000},
                "logging": {"logging_steps": 1},
                "output": {"output_dir": "outputs/{name}"},
                "runtime": {"device": "cpu"},
            }
        )
    )
    return path


def _interrupt_when(proc: subprocess.Popen[str], condition: Callable[[Job], bool]) -> Job:
    try:
        _wait_for_job(condition)
    finally:
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return _wait_for_job(lambda job: job.is_final, timeout=5)


@pytest.mark.slow
def test_resume_from_another_folder_continues_from_the_jobs_own_checkpoint(
    tmp_path: Path,
) -> None:
    started_in, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    started_in.mkdir()
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*TUNEDECK, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first = cli("run", str(_real_run_config(started_in)), cwd=started_in)
    stopped = _interrupt_when(first, lambda job: (job.current_step or 0) >= 2)
    assert stopped.status == "cancelled"
    stopped_at = stopped.current_step or 0
    output = started_in / "outputs" / "tiny-resume"
    assert (output / f"checkpoint-{stopped_at}").is_dir()  # saved on the way out

    resumed = cli("resume", stopped.id[:8], cwd=elsewhere)
    _wait_for_job(lambda job: not job.is_final, fail_if_ended=False)  # reopened by the resume
    again = _interrupt_when(
        resumed, lambda job: job.status == "running" and (job.current_step or 0) > stopped_at
    )
    assert again.id == stopped.id and again.status == "cancelled", again.error
    assert again.output_dir == str(output)
    assert not (elsewhere / "outputs").exists()  # nothing looked for or written here
    log_text = Path(again.log_path or "").read_text()
    assert "found no checkpoint" not in log_text
    with Store() as store:
        steps = [p["step"] for p in store.metrics(again.id)]
    # the chart continues from the checkpoint: no step twice, none missing
    assert steps == list(range(1, max(steps) + 1)) and max(steps) > stopped_at


def test_a_cli_run_takes_the_hub_token_from_the_keyring_before_the_environment(
    tmp_path: Path,
) -> None:
    if os.environ.get("TUNEDECK_SECRET_SERVICE") != "1":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run this under scripts/with-keyring.sh (a real Secret Service)")
        pytest.skip("no Secret Service here: run under scripts/with-keyring.sh")
    from app.core.credentials import CredentialStore

    store = CredentialStore(timeout_s=10)
    store.set("hf_token", "hf_FROM_THE_KEYRING")  # as Settings → Credentials → Save does
    try:
        dump = tmp_path / "trainer-env.json"
        done = tunedeck(
            "run",
            str(write_config(tmp_path)),
            "--python",
            str(fake_python(tmp_path)),
            cwd=tmp_path,
            FAKE_STEPS="2",
            FAKE_ENV_DUMP=str(dump),
            HF_TOKEN="hf_users_own",
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(dump.read_text())["HF_TOKEN"] == "hf_FROM_THE_KEYRING"
    finally:
        store.delete("hf_token")
