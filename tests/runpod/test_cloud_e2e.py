"""A whole cloud run through the fake RunPod: the real client, the real agent on a simulated pod,
the real trainer on the tiny model. Metrics arrive by polling, the adapter comes home verified
and loads, and the pod ends terminated (the fixture fails the test on any live pod)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.ingest import Ingestor
from app.core.launcher import LaunchError, create_job_for
from app.core.runpod.cost import PHASES
from app.core.store import Store
from tests.runpod.cloud_helpers import (
    RUN_TIMEOUT_S,
    cloud_config,
    cloud_launcher,
    point_app_at,
    run_to_end,
    wait_for_points,
)
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod
from trainer.config import RunConfig


@pytest.mark.slow
def test_a_tiny_run_on_a_simulated_pod_comes_home_and_the_pod_ends(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    cfg = cloud_config(max_steps=4)
    store = Store()
    ingestor = Ingestor(store)
    phases_seen: list[str] = []

    def phase(_job: str, line: str) -> None:
        phases_seen.append(line)
        # the proxy fails as the uploads and the downloads begin: both resume and complete
        if line.startswith(("installing", "collecting")):
            (pod_id,) = fake_runpod.pods
            fake_runpod.make_proxy_unreachable(pod_id, 1.0)

    async def run() -> str:
        async with cloud_launcher(store, ingestor, tmp_path, on_phase=phase) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            rows = store.list_resources(provider="runpod", job_id=job.id)
            assert rows and rows[0].resource_id is not None  # recorded, then filled in
            await asyncio.wait_for(launcher.wait(job.id), RUN_TIMEOUT_S)
            return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "completed", job.error
    # metrics came by polling the agent through the proxy (nothing could push to the desktop)
    assert store.metric_count(job_id) >= 4
    assert store.alerts(job_id)[0]["type"] == "job_started"
    polls = [r for r in fake_runpod.requests if r.path.endswith("/events")]
    assert polls, "the event log was never polled"
    # every phase recorded with its time; dollars from the pod's price
    cloud = store.get_cloud_run(job_id)
    assert cloud is not None and cloud.phase == "terminated"
    phases = json.loads(cloud.phases)
    assert set(PHASES[:-1]) <= set(phases), phases
    assert sum(p["dollars"] for p in phases.values()) > 0
    assert cloud.last_seq > 0
    # the adapter is home, verified, and loads
    out = Path(job.output_dir or "")
    assert (out / "adapter_config.json").is_file()
    assert (out / "adapter_model.safetensors").is_file()
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(out).peft_type == "LORA"
    # the pod is gone, and the store says so
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert row.status == "terminated" and row.terminated_at is not None
    assert fake_runpod.pod_status(row.resource_id or "") == "TERMINATED"
    assert fake_runpod.live_pods() == []
    assert any("terminated" in line for line in phases_seen)
    assert_the_key_never_reached_the_pod(fake_runpod)
    store.close()


def assert_the_key_never_reached_the_pod(fake: FakeRunPod) -> None:
    """No request through the proxy, no pod environment, no uploaded file carries the account
    key; only RunPod's API sees it."""
    key = ACCOUNT_KEY.encode()
    for request in fake.requests:
        if "/proxy/" in request.path or request.path == "/v2/pods":
            assert key not in request.body, request.path
        if "/proxy/" in request.path:
            assert all(ACCOUNT_KEY not in v for v in request.headers.values()), request.path
    for pod in fake.pods.values():
        assert ACCOUNT_KEY not in json.dumps(pod.body)
    uploads = [p for p in (fake.workdir / "pods").rglob("files/*") if p.is_file()]
    assert {p.name for p in uploads} >= {"config.json", "trainer.tar.gz", "dataset.jsonl"}
    for path in uploads:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        assert key not in data, path


# ------------------------------------------------------------------------------------ faults


def _launch_expecting_error(
    store: Store, tmp_path: Path, cfg: RunConfig, **options: Any
) -> tuple[str, LaunchError]:
    async def run() -> tuple[str, LaunchError]:
        async with cloud_launcher(store, Ingestor(store), tmp_path, **options) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            with pytest.raises(LaunchError) as err:
                await launcher.start(job, cfg)
            return job.id, err.value

    return asyncio.run(run())


def test_a_create_that_answers_500_but_made_the_pod_is_found_and_terminated(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    fake_runpod.fail_next_create_after_creating()
    store = Store()
    job_id, err = _launch_expecting_error(store, tmp_path, cloud_config())
    (pod_id,) = fake_runpod.pods
    assert "found and terminated" in str(err) and pod_id in str(err)
    assert fake_runpod.pod_status(pod_id) == "TERMINATED"
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert (row.resource_id, row.status) == (pod_id, "terminated")
    assert row.terminated_at is not None
    store.close()


def test_no_stock_names_alternatives_and_leaves_nothing_billing(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    fake_runpod.set_stock("NVIDIA RTX A5000", "NONE")
    store = Store()
    job_id, err = _launch_expecting_error(store, tmp_path, cloud_config())
    assert "RTX A5000" in str(err) or "instances" in str(err)
    assert "In stock now:" in err.hint and "GB" in err.hint
    assert fake_runpod.pods == {}
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert row.status == "refused" and row.terminated_at is not None
    store.close()


def test_a_bad_key_is_a_clear_error(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.runpod.client import RunPodClient
    from app.core.runpod.launcher import RunPodLauncher

    point_app_at(fake_runpod, monkeypatch)
    store = Store()
    cfg = cloud_config()

    async def run() -> LaunchError:
        async with RunPodClient("rpa_WRONGKEY000000000000", base_url=fake_runpod.url) as client:
            launcher = RunPodLauncher(store, Ingestor(store), client, base_dir=tmp_path)
            job = create_job_for(store, cfg, target="runpod")
            with pytest.raises(LaunchError) as err:
                await launcher.start(job, cfg)
            return err.value

    err = asyncio.run(run())
    assert "key" in f"{err} {err.hint}".lower()
    assert fake_runpod.pods == {}
    store.close()


@pytest.mark.slow
def test_dropped_app_and_unreachable_agent_every_point_arrives_once(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher is dropped mid-run (the app closed); the proxy then fails for a while; a
    new launcher reattaches from the stored seq; every step arrives, none twice."""
    point_app_at(fake_runpod, monkeypatch)
    steps = 40  # long enough that the first launcher leaves mid-run when points come late
    cfg = cloud_config(max_steps=steps)
    store = Store()
    ingestor = Ingestor(store)
    stored_batches: list[tuple[int, ...]] = []
    ingestor.subscribe(
        lambda e: (
            stored_batches.append(tuple(p["step"] for p in e.points))
            if e.kind == "metrics"
            else None
        )
    )

    async def run() -> str:
        async with cloud_launcher(store, ingestor, tmp_path) as first:
            job = create_job_for(store, cfg, target="runpod")
            await first.start(job, cfg)
            await wait_for_points(store, job.id, 2)
        # the first launcher is closed: its polling stopped, the pod runs on
        row = store.get_cloud_run(job.id)
        assert row is not None and row.phase == "training" and row.last_seq > 0
        fake_runpod.make_proxy_unreachable(row.pod_id or "", 3.0)
        async with cloud_launcher(store, ingestor, tmp_path) as second:
            assert await second.reattach(store.require_job(job.id))
            await asyncio.wait_for(second.wait(job.id), RUN_TIMEOUT_S)
        return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "completed", job.error
    assert [p["step"] for p in store.metrics(job_id)] == list(range(1, steps + 1))
    fed = [step for batch in stored_batches for step in batch]
    assert sorted(fed) == sorted(set(fed)), "a point was fed twice"
    assert [a["type"] for a in store.alerts(job_id)].count("job_started") == 1
    assert fake_runpod.live_pods() == []
    store.close()


@pytest.mark.slow
def test_the_budget_stops_the_run_and_terminates_the_pod(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    # an H100 ($2.69/h) and a budget of a few seconds of it; the run would take far longer
    cfg = cloud_config(max_steps=400, gpu_type="NVIDIA H100 80GB HBM3", budget_usd=0.012)
    store = Store()

    job_id = run_to_end(store, cfg, tmp_path)
    job = store.require_job(job_id)
    types = [a["type"] for a in store.alerts(job_id)]
    assert "budget_warning" in types
    assert job.status in ("cancelled", "failed")
    assert "budget" in (job.error or ""), job.error
    assert (job.current_step or 0) < 400
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert row.status == "terminated"
    assert fake_runpod.live_pods() == []
    store.close()


def test_a_pod_that_goes_to_error_fails_the_job_and_is_terminated(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    fake_runpod.provision_s = 2.0  # the pod provisions long enough to fail before it runs
    cfg = cloud_config()
    store = Store()

    async def run() -> str:
        async with cloud_launcher(store, Ingestor(store), tmp_path) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            (pod_id,) = fake_runpod.pods
            fake_runpod.make_pod_fail(pod_id)
            await asyncio.wait_for(launcher.wait(job.id), 60)
            return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "failed" and "ERROR" in (job.error or ""), job.error
    assert store.alerts(job_id)[-1]["type"] == "job_failed"
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert row.status == "terminated"
    assert fake_runpod.live_pods() == []
    cloud = store.get_cloud_run(job_id)
    assert cloud is not None and cloud.phase == "terminated"
    store.close()


@pytest.mark.slow
def test_a_trainer_silent_too_long_is_stopped_and_its_pod_terminated(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing heard from the pod (here: its proxy fails from the moment training starts) for
    runpod.silence_minutes: the job fails saying so and the pod is terminated."""
    point_app_at(fake_runpod, monkeypatch)
    cfg = cloud_config(max_steps=400)
    # a limit of seconds (the schema's minimum is a minute: too long for a test)
    cfg = cfg.model_copy(update={"runpod": cfg.runpod.model_copy(update={"silence_minutes": 0.05})})
    store = Store()

    def phase(_job: str, line: str) -> None:
        if line.startswith("training"):
            (pod_id,) = fake_runpod.pods
            fake_runpod.make_proxy_unreachable(pod_id, 120.0)

    async def run() -> str:
        async with cloud_launcher(store, Ingestor(store), tmp_path, on_phase=phase) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await asyncio.wait_for(launcher.wait(job.id), 90)
            return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "failed" and "reported nothing" in (job.error or ""), job.error
    assert fake_runpod.live_pods() == []
    store.close()


@pytest.mark.slow
def test_cancel_downloads_the_checkpoint_then_terminates_the_pod(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    cfg = cloud_config(max_steps=400)
    store = Store()

    async def run() -> str:
        async with cloud_launcher(store, Ingestor(store), tmp_path) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await wait_for_points(store, job.id, 3)
            await asyncio.wait_for(launcher.cancel(job.id), RUN_TIMEOUT_S)
            assert not launcher.status(job.id).running
            return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "cancelled", job.error
    assert "job_cancelled" in [a["type"] for a in store.alerts(job_id)]
    out = Path(job.output_dir or "")
    assert any(p.name == "adapter_model.safetensors" for p in out.glob("checkpoint-*/*")), list(
        out.rglob("*")
    )
    assert fake_runpod.live_pods() == []
    store.close()


@pytest.mark.slow
def test_at_its_max_runtime_a_cloud_run_stops_with_a_checkpoint_and_the_pod_ends(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer's own clock stops it (the launcher's cap is a backstop past it): a warning
    first, then a checkpoint, which comes home before the pod is terminated."""
    point_app_at(fake_runpod, monkeypatch)
    cfg = cloud_config(max_steps=1_000_000)
    limits = {"max_runtime_minutes": 0.2, "timeout_warning_minutes": 0.1}  # 12 s, 6 s
    cfg = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update=limits)})
    store = Store()

    job_id = run_to_end(store, cfg, tmp_path)
    job = store.require_job(job_id)
    assert job.status == "cancelled", job.error
    types = [a["type"] for a in store.alerts(job_id)]
    assert "timeout_warning" in types and types[-1] == "job_cancelled", types
    [stopped] = [a for a in store.alerts(job_id) if a["type"] == "job_cancelled"]
    assert stopped["status"] == "timeout"
    out = Path(job.output_dir or "")
    saved = [p.parent.name for p in out.glob("checkpoint-*/adapter_model.safetensors")]
    assert f"checkpoint-{stopped['current_step']}" in saved, (saved, stopped)
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert row.status == "terminated"
    assert fake_runpod.live_pods() == []
    store.close()


@pytest.mark.slow
def test_when_the_app_vanishes_the_pod_terminates_itself_after_the_grace_time(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app closes mid-run and does not come back in time: the finished run waits for it
    runpod.grace_minutes, then the agent deletes its own pod with the pod-scoped key. The next
    start finds the pod gone and closes the job saying why."""
    point_app_at(fake_runpod, monkeypatch)
    # long enough (seconds, with a checkpoint every 2 steps) that the app leaves mid-run even
    # when the first point reaches it late
    cfg = cloud_config(max_steps=40)
    cfg = cfg.model_copy(update={"runpod": cfg.runpod.model_copy(update={"grace_minutes": 0.05})})
    store = Store()

    async def run() -> str:
        async with cloud_launcher(store, Ingestor(store), tmp_path) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await wait_for_points(store, job.id, 1)
        assert not store.require_job(job.id).is_final, "the run ended before the app left"
        # the app is gone; the run finishes and nobody collects it
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while fake_runpod.live_pods():
            assert time.monotonic() < deadline, "the pod did not terminate itself"
            await asyncio.sleep(0.5)
        async with cloud_launcher(store, Ingestor(store), tmp_path) as again:
            assert not await again.reattach(store.require_job(job.id))
        return job.id

    job_id = asyncio.run(run())
    (pod_id,) = fake_runpod.pods
    deletes = [r for r in fake_runpod.requests if r.method == "DELETE"]
    assert deletes and deletes[0].headers.get("Authorization") != f"Bearer {ACCOUNT_KEY}"
    assert fake_runpod.pod_status(pod_id) == "TERMINATED"
    job = store.require_job(job_id)
    assert job.status == "failed" and "while Tunedeck was closed" in (job.error or "")
    (row,) = store.list_resources(provider="runpod", job_id=job_id)
    assert row.status == "terminated" and row.terminated_at is not None
    store.close()


@pytest.mark.slow
def test_a_trainer_that_fails_on_the_pod_fails_the_job_and_ends_the_pod(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    cfg = cloud_config()
    # preference training on chat rows: the trainer refuses the dataset on the pod
    cfg = cfg.model_copy(update={"method": "dpo"})
    store = Store()

    job_id = run_to_end(store, cfg, tmp_path)
    job = store.require_job(job_id)
    assert job.status == "failed"
    assert "preference" in (job.error or "") or "chosen" in (job.error or ""), job.error
    assert job.exit_code not in (None, 0)
    assert fake_runpod.live_pods() == []
    store.close()


def test_a_budget_spent_before_the_pod_runs_gives_the_pod_up(
    fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    fake_runpod.provision_s = 30.0  # a pod slow to start
    # an H100 at $2.69/h spends this budget in about a second and a half
    cfg = cloud_config(gpu_type="NVIDIA H100 80GB HBM3", budget_usd=0.001)
    store = Store()

    async def run() -> str:
        async with cloud_launcher(store, Ingestor(store), tmp_path) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await asyncio.wait_for(launcher.wait(job.id), 30)
            return job.id

    job_id = asyncio.run(run())
    job = store.require_job(job_id)
    assert job.status == "failed" and "budget" in (job.error or ""), job.error
    assert fake_runpod.live_pods() == []
    store.close()
