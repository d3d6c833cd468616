"""The local launcher with a real subprocess (the fake trainer) and a live receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_jobs import API_KEY, FAKE_TRAINER

from app.core import paths
from app.core.event_log import events_of_job
from app.core.ingest import Ingestor
from app.core.jobs import Job
from app.core.launcher import LaunchError, ReceiverAddress, contract_env, create_job_for
from app.core.launcher_local import LocalLauncher
from app.core.processes import process_start_time
from app.core.receiver import ReceiverServer
from app.core.store import Store
from app.core.trainer_python import check_trainer_python, clean_environment
from trainer.config import RunConfig, parse_config


@dataclass
class Harness:
    store: Store
    launcher: LocalLauncher
    server: ReceiverServer
    lines: list[tuple[str, str]] = field(default_factory=list)
    exits: list[tuple[str, int | None]] = field(default_factory=list)

    def output(self, job_id: str) -> list[str]:
        return [line for j, line in self.lines if j == job_id]


def config(tmp_path: Path, name: str = "fake") -> RunConfig:
    return parse_config({"name": name, "output": {"output_dir": str(tmp_path / "out" / name)}})


@contextlib.asynccontextmanager
async def harness(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **fake_env: str
) -> AsyncIterator[Harness]:
    for key, value in fake_env.items():
        monkeypatch.setenv(f"FAKE_{key.upper()}", value)
    ingestor = Ingestor(store)
    server = ReceiverServer(ingestor, store, api_key=API_KEY)
    await server.start()
    h = Harness(store, None, server)  # type: ignore[arg-type]
    h.launcher = LocalLauncher(
        store,
        ingestor,
        receiver=ReceiverAddress(server.url, API_KEY),
        trainer_args=(str(FAKE_TRAINER),),
        base_dir=tmp_path,
        on_output=lambda j, line: h.lines.append((j, line)),
        on_exit=lambda j, code: h.exits.append((j, code)),
        poll_s=0.05,
    )
    try:
        yield h
    finally:
        await h.launcher.close()
        await server.stop()


async def start(h: Harness, cfg: RunConfig) -> Job:
    job = create_job_for(h.store, cfg)
    await h.launcher.start(job, cfg)
    return job


def test_a_run_completes_with_every_point_and_a_clean_environment(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/frozen/app/lib")
    monkeypatch.setenv("PYTHONPATH", "/frozen/app")
    monkeypatch.setenv("JOB_TOKEN", "inherited-token-must-not-leak")

    async def scenario() -> tuple[Harness, Job, int | None]:
        async with harness(store, tmp_path, monkeypatch, steps="20") as h:
            job = await start(h, config(tmp_path))
            code = await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return h, job, code

    h, job, code = asyncio.run(scenario())
    done = store.require_job(job.id)
    assert code == 0 and done.exit_code == 0
    assert done.status == "completed" and done.total_steps == 20
    assert [p["step"] for p in store.metrics(job.id)] == list(range(1, 21))
    out = h.output(job.id)
    env_seen = json.loads(next(line for line in out if line.startswith("ENV "))[4:])
    assert env_seen == {
        "LD_LIBRARY_PATH": False,
        "PYTHONPATH": False,
        "PYTHONHOME": False,
        "JOB_TOKEN": True,
    }
    assert "step 20/20" in out and out[-1] == "done"
    assert h.exits == [(job.id, 0)]
    # the job folder holds the config (no secrets) and the log; only a hash of the token is kept
    folder = paths.job_dir(job.id)
    written = (folder / "config.json").read_text()
    assert parse_config(json.loads(written)).name == "fake"
    assert "inherited-token" not in written and done.token_hash and len(done.token_hash) == 64
    assert "step 20/20" in (folder / "trainer.log").read_text()


def test_a_crash_without_a_final_alert_is_failed_with_the_log_tail(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> Job:
        async with harness(store, tmp_path, monkeypatch, mode="crash", steps="10") as h:
            job = await start(h, config(tmp_path))
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return job

    job = store.require_job(asyncio.run(scenario()).id)
    assert job.status == "failed" and job.exit_code == 1
    assert "exit code 1" in (job.error or "") and "RuntimeError: boom" in (job.error or "")


def test_cancel_stops_cleanly_through_the_trainer(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> Harness:
        async with harness(store, tmp_path, monkeypatch, steps="500", step_s="0.02") as h:
            job = await start(h, config(tmp_path))
            await wait_for_step(store, job.id, 5)
            await h.launcher.cancel(job.id, grace_s=20)
            assert not h.launcher.status(job.id).running
            return h

    h = asyncio.run(scenario())
    job = store.list_jobs()[0]
    assert job.status == "cancelled" and job.exit_code == 0
    assert "checkpoint saved" in h.output(job.id)
    assert 5 <= store.metric_count(job.id) < 500


def test_a_trainer_that_ignores_sigterm_is_killed_after_the_grace_period(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> float:
        async with harness(store, tmp_path, monkeypatch, mode="ignore_term", steps="2000") as h:
            job = await start(h, config(tmp_path))
            await wait_for_step(store, job.id, 1)
            began = time.monotonic()
            h.launcher.grace_s = 0.5  # the launcher's default, as Settings would set it
            await h.launcher.cancel(job.id)
            return time.monotonic() - began

    took = asyncio.run(scenario())
    job = store.list_jobs()[0]
    assert job.status == "cancelled" and "killed" in (job.error or "")
    assert job.exit_code == -9 and took < 10


def test_resume_restarts_the_same_job_from_its_latest_checkpoint(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> Harness:
        async with harness(store, tmp_path, monkeypatch, steps="300") as h:
            job = await start(h, config(tmp_path))
            await wait_for_step(store, job.id, 3)
            await h.launcher.cancel(job.id, grace_s=20)
            monkeypatch.setenv("FAKE_STEPS", "5")  # the rest of the run, shorter here
            resumed = await h.launcher.resume(job.id)
            assert resumed.id == job.id and resumed.status == "queued"
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return h

    h = asyncio.run(scenario())
    [job] = store.list_jobs()
    assert job.status == "completed"
    out = h.output(job.id)
    assert "CONFIG name=fake resume=None" in out and "CONFIG name=fake resume=latest" in out
    assert json.loads(job.config_json)["checkpoint"]["resume_from_checkpoint"] == "latest"


def test_resume_waits_until_the_cancelled_trainer_has_exited(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job turns "cancelled" on its final alert, while the trainer may still be writing its
    # checkpoint; a second trainer on the same output folder then would race it.
    async def scenario() -> tuple[str, str]:
        async with harness(store, tmp_path, monkeypatch, steps="300", linger_s="3") as h:
            job = await start(h, config(tmp_path))
            await wait_for_step(store, job.id, 3)
            os.kill(job_pid(store, job.id), signal.SIGTERM)  # as a terminal's Ctrl-C would
            deadline = time.monotonic() + 20
            while store.require_job(job.id).status != "cancelled":
                assert time.monotonic() < deadline, "the trainer never reported job_cancelled"
                await asyncio.sleep(0.05)
            with pytest.raises(LaunchError, match="still finishing") as refused:
                await h.launcher.resume(job.id)
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            monkeypatch.setenv("FAKE_STEPS", "5")
            monkeypatch.setenv("FAKE_LINGER_S", "0")
            await h.launcher.resume(job.id)
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return str(refused.value), store.require_job(job.id).status

    refused, status = asyncio.run(scenario())
    assert "still finishing" in refused
    assert status == "completed"


def job_pid(store: Store, job_id: str) -> int:
    pid = store.require_job(job_id).pid
    assert pid is not None
    return pid


def test_what_the_receiver_never_got_is_read_back_from_the_event_log(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path, "shared")
    # an earlier job wrote to the same output folder: its events are not this job's
    out = tmp_path / "out" / "shared"
    out.mkdir(parents=True)
    earlier = [
        {"kind": "alert", "data": {"type": "job_started", "job_id": "earlier"}},
        {"kind": "metric", "data": {"step": 1, "train_loss": 99.0}},
    ]
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in earlier))

    async def scenario() -> Job:
        async with harness(store, tmp_path, monkeypatch, mode="silent", steps="30") as h:
            job = await start(h, cfg)
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return job

    job = store.require_job(asyncio.run(scenario()).id)
    assert job.status == "completed"  # the final alert came from the log
    points = store.metrics(job.id)
    assert [p["step"] for p in points] == list(range(1, 31))
    assert points[0]["train_loss"] == 2.0  # not the earlier job's 99.0


def test_a_running_job_cannot_be_started_twice(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with harness(store, tmp_path, monkeypatch, steps="300") as h:
            cfg = config(tmp_path)
            job = await start(h, cfg)
            with pytest.raises(LaunchError, match=r"already running|not queued"):
                await h.launcher.start(store.require_job(job.id), cfg)
            await h.launcher.cancel(job.id, grace_s=20)

    asyncio.run(scenario())


def test_reattach_follows_a_trainer_that_outlived_the_app(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[bool, list[str]]:
        async with harness(store, tmp_path, monkeypatch, steps="60", step_s="0.03") as first:
            job = await start(first, config(tmp_path))
            await wait_for_step(store, job.id, 2)
            await first.launcher.close()  # the app quits; the trainer keeps going
            # a new app start: a fresh launcher over the same store and receiver port
            lines: list[str] = []
            again = LocalLauncher(
                store,
                Ingestor(store),
                receiver=ReceiverAddress(first.server.url, API_KEY),
                on_output=lambda j, line: lines.append(line),
                poll_s=0.05,
            )
            attached = await again.reattach(store.require_job(job.id))
            assert again.status(job.id).running
            await asyncio.wait_for(again.wait(job.id), 30)
            return attached, lines

    attached, lines = asyncio.run(scenario())
    [job] = store.list_jobs()
    assert attached and job.status == "completed"
    assert "step 60/60" in lines  # tailing resumed
    assert store.metric_count(job.id) == 60


def test_reattach_to_a_gone_or_reused_pid_marks_the_job_failed(store: Store) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = store.create_job(name="dead", method="sft", model="m")
    store.update_job(dead.id, pid=gone.pid, pid_started_at=time.time() - 5)
    store.set_status(dead.id, "running")
    # a live process, but not the one that was started (its start time differs): pid reuse
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process_start_time(other.pid)
        assert started is not None
        reused = store.create_job(name="reused", method="sft", model="m")
        store.update_job(reused.id, pid=other.pid, pid_started_at=started - 1000)
        never = store.create_job(name="never", method="sft", model="m")
        store._db.execute(
            "UPDATE jobs SET created_at = created_at - 3600 WHERE id = ?", (never.id,)
        )
        starting = store.create_job(name="starting", method="sft", model="m")  # by another app
        launcher = LocalLauncher(store)

        async def scenario() -> list[bool]:
            return [await launcher.reattach(store.require_job(j.id)) for j in (dead, reused, never)]

        assert asyncio.run(scenario()) == [False, False, False]
        assert not asyncio.run(launcher.reattach(starting))
        assert store.require_job(starting.id).status == "queued"  # left to whoever starts it
        assert other.poll() is None  # someone else's process is left alone
    finally:
        other.kill()
        other.wait()
    for job_id in (dead.id, reused.id):
        job = store.require_job(job_id)
        assert job.status == "failed" and "not watching" in (job.error or "")
    assert "never started" in (store.require_job(never.id).error or "")


def test_contract_environment_has_optional_variables_only_when_given(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="org/m", user_id="me")
    receiver = ReceiverAddress("http://127.0.0.1:8765", "key")
    env = contract_env(job, token="tok", receiver=receiver, environ={})
    assert env == {
        "JOB_ID": job.id,
        "JOB_TOKEN": "tok",
        "USER_ID": "me",
        "MODEL_NAME": "org/m",
        "METRICS_API_URL": "http://127.0.0.1:8765/api/training/local/metrics",
        "ALERT_API_URL": "http://127.0.0.1:8765/api/alerts/trigger",
        "INTERNAL_API_KEY": "key",
    }
    assert contract_env(job, token="t", receiver=None, hf_token="hf_x")["HF_TOKEN"] == "hf_x"
    assert "METRICS_API_URL" not in contract_env(job, token="t", receiver=None)


def test_contract_environment_takes_hub_token_dataset_url_and_repo_from_one_place(
    store: Store,
) -> None:
    job = store.create_job(name="a", method="sft", model="org/m")
    user_env = {"HF_TOKEN": "hf_from_the_users_shell"}
    local = parse_config({"name": "a"})
    env = contract_env(job, token="t", receiver=None, cfg=local, environ=user_env)
    assert env["HF_TOKEN"] == "hf_from_the_users_shell"  # no keyring token: the user's own
    assert "DATASET_URL" not in env and "HF_REPO_NAME" not in env
    hub = parse_config(
        {
            "name": "a",
            "dataset": {"path": "https://example.org/rows.jsonl"},
            "output": {"push_to_hub": True, "hub_repo": "ada/tiny"},
        }
    )
    env = contract_env(job, token="t", receiver=None, cfg=hub, hf_token="hf_kr", environ=user_env)
    assert env["HF_TOKEN"] == "hf_kr"  # the keyring's comes first
    assert env["DATASET_URL"] == "https://example.org/rows.jsonl"
    assert env["HF_REPO_NAME"] == "ada/tiny"
    repo_off = hub.model_copy(
        update={"output": hub.output.model_copy(update={"push_to_hub": False})}
    )
    assert "HF_REPO_NAME" not in contract_env(job, token="t", receiver=None, cfg=repo_off)


def test_a_run_gets_the_hub_variables_and_its_log_shows_no_secret(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "env.json"
    monkeypatch.setenv("HF_TOKEN", "hf_users_own_must_lose_to_the_keyring")
    cfg = parse_config(
        {
            "name": "hub",
            "dataset": {"path": "https://data.example/rows.jsonl?X-Signature=s3cr3t"},
            "output": {
                "output_dir": str(tmp_path / "out" / "hub"),
                "push_to_hub": True,
                "hub_repo": "ada/tiny",
            },
        }
    )

    async def keyring_token() -> str | None:
        return "hf_SECRET_from_keyring"

    async def scenario() -> Job:
        async with harness(store, tmp_path, monkeypatch, steps="3", env_dump=str(dump)) as h:
            h.launcher.hf_token_source = keyring_token
            job = await start(h, cfg)
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return job

    job = asyncio.run(scenario())
    env = json.loads(dump.read_text())
    assert env["HF_TOKEN"] == "hf_SECRET_from_keyring"
    assert env["DATASET_URL"] == "https://data.example/rows.jsonl?X-Signature=s3cr3t"
    assert env["HF_REPO_NAME"] == "ada/tiny"
    log_text = (paths.job_dir(job.id) / "trainer.log").read_text()
    assert "HF_TOKEN=*** " in log_text and "HF_REPO_NAME=ada/tiny" in log_text
    assert "DATASET_URL=https://data.example/rows.jsonl?***" in log_text
    for secret in ("hf_SECRET_from_keyring", "s3cr3t", env["JOB_TOKEN"], API_KEY):
        assert secret not in log_text


def test_the_settings_check_and_a_run_see_the_same_environment(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a frozen app's environment: the trainer Python must get the user's own library path back
    monkeypatch.setenv("LD_LIBRARY_PATH", "/frozen/_internal")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/opt/cuda/lib64")
    monkeypatch.setenv("PYTHONPATH", "/frozen")
    monkeypatch.setenv("JOB_ID", "inherited-from-a-parent")
    seen = tmp_path / "seen"
    seen.mkdir()
    # a "training Python" that records the environment it was started with, every time
    python = tmp_path / "python-that-records"
    python.write_text(
        "#!/bin/sh\n"
        f'n=$(ls "{seen}" | wc -l)\n'
        f'"{sys.executable}" -I -c "import json, os, sys; '
        f'json.dump(dict(os.environ), open(sys.argv[1], \'w\'))" "{seen}/$n.json"\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)

    async def scenario() -> Job:
        async with harness(store, tmp_path, monkeypatch, steps="2") as h:
            check = check_trainer_python(str(python), timeout_s=20)  # Settings → Check
            assert check.python_version  # the probe ran through the recording script
            h.launcher.python = str(python)
            job = await start(h, config(tmp_path))
            await asyncio.wait_for(h.launcher.wait(job.id), 30)
            return job

    job = asyncio.run(scenario())
    check_env, run_env = (json.loads((seen / f"{n}.json").read_text()) for n in (0, 1))
    assert run_env["JOB_ID"] == job.id  # the run's own, not the inherited one
    contract = set(contract_env(job, token="", receiver=h_receiver(), environ={}))
    shell = {"PWD", "OLDPWD", "SHLVL", "_"}  # set by /bin/sh in the recording script
    assert {k: v for k, v in run_env.items() if k not in contract | shell} == {
        k: v for k, v in check_env.items() if k not in shell
    }
    assert check_env["LD_LIBRARY_PATH"] == "/opt/cuda/lib64" and "PYTHONPATH" not in check_env
    assert "JOB_ID" not in check_env


def h_receiver() -> ReceiverAddress:
    return ReceiverAddress("http://127.0.0.1:1", API_KEY)


def test_a_second_run_into_an_output_folder_in_use_is_refused(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[Job, Job, LaunchError, LaunchError]:
        async with harness(store, tmp_path, monkeypatch, steps="300") as h:
            cfg = config(tmp_path, "shared")
            earlier = await start(h, cfg)
            await wait_for_step(store, earlier.id, 2)
            await h.launcher.cancel(earlier.id, grace_s=20)
            running = await start(h, cfg)  # the folder is free again
            second = create_job_for(store, cfg.model_copy(update={"name": "second"}))
            with pytest.raises(LaunchError) as refused:
                await h.launcher.start(second, cfg)
            with pytest.raises(LaunchError) as resume_refused:
                await h.launcher.resume(earlier.id)
            await h.launcher.cancel(running.id, grace_s=20)
            return running, second, refused.value, resume_refused.value

    running, second, refused, resume_refused = asyncio.run(scenario())
    for err in (refused, resume_refused):
        assert running.id in str(err) and "out/shared" in str(err)
        assert "output.output_dir" in err.hint
    assert store.require_job(second.id).pid is None  # nothing was started for it
    earlier = next(j for j in store.list_jobs() if j.id not in (running.id, second.id))
    assert store.require_job(earlier.id).status == "cancelled"  # a refused resume changes nothing


def test_reading_back_the_event_log_keeps_only_the_jobs_own_lines(tmp_path: Path) -> None:
    lines = [
        {"kind": "alert", "job_id": "A", "data": {"type": "job_started", "job_id": "A"}},
        {"kind": "metric", "job_id": "A", "data": {"step": 1, "train_loss": 1.0}},
        {"kind": "alert", "job_id": "B", "data": {"type": "job_started", "job_id": "B"}},
        {"kind": "metric", "job_id": "A", "data": {"step": 2, "train_loss": 0.5}},
        {"kind": "metric", "job_id": "B", "data": {"step": 1, "train_loss": 9.0}},
        {"kind": "alert", "job_id": "A", "data": {"type": "job_completed", "job_id": "A"}},
    ]
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"kind": "metr')
    points, alerts = events_of_job(log, "A")
    assert [(p["step"], p["train_loss"]) for p in points] == [(1, 1.0), (2, 0.5)]
    assert [a["type"] for a in alerts] == ["job_started", "job_completed"]
    points, alerts = events_of_job(log, "B")
    assert points == [{"step": 1, "train_loss": 9.0}] and len(alerts) == 1
    # an older trainer wrote no job id: from where this run began, the folder was its alone
    old = tmp_path / "old.jsonl"
    old.write_text(
        json.dumps({"kind": "alert", "data": {"type": "job_started", "job_id": "C"}})
        + "\n"
        + json.dumps({"kind": "metric", "data": {"step": 1, "train_loss": 3.0}})
        + "\n"
    )
    points, alerts = events_of_job(old, "C")
    assert points == [{"step": 1, "train_loss": 3.0}] and alerts[0]["job_id"] == "C"


def test_resume_runs_the_trainer_where_the_job_first_ran(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # started by the GUI (its trainers run in the data folder), resumed by `tunedeck resume`
    # from another folder: the trainer must find the same relative output folder again
    gui_dir, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    cfg = parse_config({"name": "relative", "output": {"output_dir": "outputs/{name}"}})

    async def scenario() -> tuple[Job, list[str]]:
        async with harness(store, gui_dir, monkeypatch, steps="300") as gui:
            job = await start(gui, cfg)
            await wait_for_step(store, job.id, 2)
            await gui.launcher.cancel(job.id, grace_s=20)
        monkeypatch.setenv("FAKE_STEPS", "3")
        async with harness(store, elsewhere, monkeypatch) as cli:
            await cli.launcher.resume(job.id)
            await asyncio.wait_for(cli.launcher.wait(job.id), 30)
            return job, cli.output(job.id)

    job, resumed_output = asyncio.run(scenario())
    assert f"CWD {gui_dir}" in resumed_output
    assert store.require_job(job.id).output_dir == str(gui_dir / "outputs" / "relative")
    assert not (elsewhere / "outputs").exists()


def test_clean_environment_restores_a_frozen_apps_saved_library_path() -> None:
    env = clean_environment(
        {
            "PATH": "/usr/bin",
            "LD_LIBRARY_PATH": "/frozen/_internal",
            "LD_LIBRARY_PATH_ORIG": "/opt/cuda/lib64",
            "PYTHONHOME": "/frozen",
            "JOB_ID": "inherited",
        }
    )
    assert env["LD_LIBRARY_PATH"] == "/opt/cuda/lib64"
    assert "PYTHONHOME" not in env and "JOB_ID" not in env and env["PATH"] == "/usr/bin"


def test_a_missing_python_is_a_launch_error_with_a_hint(store: Store, tmp_path: Path) -> None:
    launcher = LocalLauncher(store, python=str(tmp_path / "no-python"), base_dir=tmp_path)
    cfg = config(tmp_path)
    job = create_job_for(store, cfg)
    with pytest.raises(LaunchError) as err:
        asyncio.run(launcher.start(job, cfg))
    assert "Settings" in err.value.hint


async def wait_for_step(store: Store, job_id: str, step: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (store.require_job(job_id).current_step or 0) < step:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached step {step}")
        await asyncio.sleep(0.02)
