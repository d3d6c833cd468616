"""Resuming a cloud job on a new pod, through the fake RunPod with the real client, the real agent
on simulated pods and the real trainer: the checkpoint the first pod sent home goes up to the
second pod, the trainer continues from it, every step is stored once, both pods end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.core.ingest import Ingestor
from app.core.jobs import Job
from app.core.launcher import LaunchError, create_job_for
from app.core.runpod.cost import EARLIER
from app.core.runpod.resume import CHECKPOINT_UPLOAD
from app.core.store import Store
from tests.runpod.cloud_helpers import (
    RUN_TIMEOUT_S,
    cloud_config,
    cloud_launcher,
    point_app_at,
    wait_for_points,
)
from tests.runpod.fake_runpod import FakeRunPod
from tests.runpod.test_cloud_e2e import assert_the_key_never_reached_the_pod
from trainer.checkpoints import checkpoint_folders, checkpoint_step, latest_complete_checkpoint

# long enough that the cancel lands mid-run even when the points reach the app late
MAX_STEPS = 60


@pytest.mark.slow
def test_a_cancelled_cloud_run_resumes_on_a_new_pod_from_its_checkpoint(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled mid-run (its checkpoints come home; the newest one is then made incomplete, so
    the resume takes the one before and the second pod logs some steps again), resumed on a
    second pod: the trainer there reports resuming from that checkpoint, the first point after
    it is the next step, each step is stored once with the later figures, both pods end."""
    point_app_at(fake_runpod, monkeypatch)
    cfg = cloud_config(max_steps=MAX_STEPS)
    store = Store()
    ingestor = Ingestor(store)
    fed: list[list[int]] = []  # the steps of each metrics batch, in the order they were stored
    ingestor.subscribe(
        lambda e: fed.append([p["step"] for p in e.points]) if e.kind == "metrics" else None
    )
    marks: dict[str, int] = {}
    cut: list[Path] = []

    async def run() -> str:
        async with cloud_launcher(store, ingestor, tmp_path) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await wait_for_points(store, job.id, 3)
            await asyncio.wait_for(launcher.cancel(job.id), RUN_TIMEOUT_S)
            assert store.require_job(job.id).status == "cancelled"
            marks["fed"], marks["last"] = len(fed), store.require_job(job.id).current_step or 0
            # the newest checkpoint that came home is cut short (no trainer_state.json): the
            # resume takes the one before it, so steps past it were logged by the first pod too
            out = Path(store.require_job(job.id).output_dir or "")
            newest, *older = checkpoint_folders(out)
            assert older, [p.name for p in checkpoint_folders(out)]
            (newest / "trainer_state.json").unlink()
            cut.append(newest)
            # a cancelled job is not running any more, and a running one is refused a resume
            resumed = await launcher.resume(job.id)
            assert resumed.status in ("queued", "running") and len(fake_runpod.pods) == 2
            with pytest.raises(LaunchError) as refused:
                await launcher.resume(job.id)
            assert "Only a finished job resumes" in refused.value.hint
            await asyncio.wait_for(launcher.wait(job.id), RUN_TIMEOUT_S)
            return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "completed", job.error
    out = Path(job.output_dir or "")

    # what the trainer on the second pod resumed from is a checkpoint the first one saved
    started = [a for a in store.alerts(job_id) if a["type"] == "job_started"]
    assert len(started) == 2 and "resumed_from_step" not in started[0]
    resumed_from = started[1]["resumed_from_step"]
    assert resumed_from > 0
    kept = list(out.glob("events.*.jsonl"))  # the first pod's event log, kept aside
    assert len(kept) == 1, kept
    first_pod_steps = {
        json.loads(line)["data"]["step"]
        for line in kept[0].read_text().splitlines()
        if json.loads(line)["kind"] == "metric"
    }
    assert resumed_from in first_pod_steps and resumed_from < checkpoint_step(cut[0])
    assert resumed_from < marks["last"] == max(first_pod_steps)

    # the second pod's first point is the step after the checkpoint; every step stored once
    after_resume = [step for batch in fed[marks["fed"] :] for step in batch]
    assert after_resume and after_resume[0] == resumed_from + 1, after_resume[:5]
    assert sorted(after_resume) == list(range(resumed_from + 1, MAX_STEPS + 1))
    stored = store.metrics(job_id)
    assert [p["step"] for p in stored] == list(range(1, MAX_STEPS + 1))
    # the steps both pods logged hold the second pod's figures (later wins, as for local)
    second_log = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    again = {e["data"]["step"]: e["data"] for e in second_log if e["kind"] == "metric"}
    for step in range(resumed_from + 1, marks["last"] + 1):
        point = stored[step - 1]
        assert point["samples_per_second"] == again[step]["samples_per_second"], step
        assert point["train_loss"] == again[step]["train_loss"], step

    # the checkpoint went up as one archive, unpacked by the agent before the trainer started
    first_pod, second_pod = (r.resource_id for r in store.list_resources(job_id=job_id))
    uploads = fake_runpod.requests_to(f"/proxy/{second_pod}-8765/files/{CHECKPOINT_UPLOAD}")
    assert any(r.method == "PUT" for r in uploads)
    assert not fake_runpod.requests_to(f"/proxy/{first_pod}-8765/files/{CHECKPOINT_UPLOAD}")
    pod_home = fake_runpod.workdir / "pods" / str(second_pod) / "agent-home"
    agent_log = (pod_home.parent / "container.log").read_text(errors="replace")
    unpacked = agent_log.find("the checkpoint to resume from is in the output folder")
    assert -1 < unpacked < agent_log.find("trainer started"), agent_log
    assert not (pod_home / "files" / CHECKPOINT_UPLOAD).exists()  # unpacked, then dropped
    # it was the newest complete checkpoint the first pod sent home
    newest = latest_complete_checkpoint(out)
    assert newest is not None and checkpoint_step(newest) == resumed_from

    # the adapter came home; both pods are terminated, each with its own row
    assert (out / "adapter_model.safetensors").is_file()
    rows = store.list_resources(provider="runpod", job_id=job_id)
    assert len(rows) == 2 and {r.resource_id for r in rows} == set(fake_runpod.pods)
    assert all(r.status == "terminated" and r.terminated_at is not None for r in rows)
    assert fake_runpod.live_pods() == []
    # one ledger for the job: the first pod's money kept as "earlier pods", the second's added
    cloud = store.get_cloud_run(job_id)
    assert cloud is not None and cloud.phase == "terminated" and cloud.pod_id == rows[1].resource_id
    phases = json.loads(cloud.phases)
    assert phases[EARLIER]["dollars"] > 0 and phases["training"]["dollars"] > 0
    assert_the_key_never_reached_the_pod(fake_runpod)
    store.close()


def _ended_cloud_job(store: Store, base_dir: Path, status: str) -> tuple[Job, Path]:
    """A cloud job in the store with ``status`` and the output folder it would have used."""
    cfg = cloud_config()
    job = create_job_for(store, cfg, target="runpod")
    out = cfg.resolved_output_dir(base_dir)
    store.update_job(job.id, output_dir=str(out))
    return store.set_status(job.id, status), out


def _refused_resume(store: Store, base_dir: Path, job_id: str) -> LaunchError:
    async def run() -> LaunchError:
        async with cloud_launcher(store, Ingestor(store), base_dir) as launcher:
            with pytest.raises(LaunchError) as err:
                await launcher.resume(job_id)
            return err.value

    return asyncio.run(run())


def test_a_cloud_job_without_a_complete_checkpoint_is_not_resumed(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pod is made for a resume that has nothing to continue from; the job stays as it was."""
    point_app_at(fake_runpod, monkeypatch)
    store = Store()
    job, out = _ended_cloud_job(store, tmp_path, "cancelled")
    (out / "checkpoint-2").mkdir(parents=True)  # cut short: no trainer_state.json
    err = _refused_resume(store, tmp_path, job.id)
    assert "no complete checkpoint to continue from" in str(err) and str(out) in str(err)
    assert "checkpoint-2" in str(err) and "duplicate" in err.hint
    assert fake_runpod.pods == {} and store.list_resources(job_id=job.id) == []
    assert store.require_job(job.id).status == "cancelled"
    store.close()


@pytest.mark.parametrize(
    ("status", "said", "hint"),
    [("running", "is running", "finished"), ("completed", "nothing to continue", "Duplicate")],
)
def test_a_running_or_completed_cloud_job_is_not_resumed(
    fake_runpod: FakeRunPod,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    said: str,
    hint: str,
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    store = Store()
    job, out = _ended_cloud_job(store, tmp_path, status)
    state = out / "checkpoint-2" / "trainer_state.json"  # a checkpoint is there: still refused
    state.parent.mkdir(parents=True)
    state.write_text('{"global_step": 2}')
    (state.parent / "adapter_model.bin").write_bytes(b"w")
    err = _refused_resume(store, tmp_path, job.id)
    assert said in str(err) and hint in err.hint
    assert fake_runpod.pods == {}
    assert store.require_job(job.id).status == status
    store.close()
