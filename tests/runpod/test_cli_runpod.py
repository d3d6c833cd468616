"""`tunedeck run --target runpod`, `tunedeck batch` and `tunedeck pods` through the fake RunPod,
with the key in the real keyring (scripts/with-keyring.sh), as a user would run them."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.core.credentials import CredentialStore
from app.core.launcher import create_job_for
from app.core.runpod.client import RunPodClient
from app.core.runpod.models import PodRequest
from app.core.store import Store
from tests.runpod.cloud_helpers import cloud_config, point_app_at
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod


def _needs_secret_service() -> None:
    if os.environ.get("TUNEDECK_SECRET_SERVICE") != "1":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("run the RunPod CLI tests through scripts/with-keyring.sh")
        pytest.skip("no Secret Service here: run under scripts/with-keyring.sh")


@pytest.fixture
def stored_key() -> Iterator[CredentialStore]:
    _needs_secret_service()
    store = CredentialStore(timeout_s=10)
    store.set("runpod_api_key", ACCOUNT_KEY)
    yield store
    store.delete("runpod_api_key")


def _write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.slow
def test_run_target_runpod_trains_on_a_pod_and_ends_it(
    fake_runpod: FakeRunPod,
    stored_key: CredentialStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = _write(tmp_path / "cloud.json", json.loads(cloud_config(max_steps=3).to_json()))
    code = main(["run", str(config), "--target", "runpod"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[runpod]" in out and "pod terminated" in out
    assert "training" in out and "$" in out  # phase and dollars
    assert "cost " in out and "completed" in out
    with Store() as store:
        (job,) = store.list_jobs()
        assert (job.target, job.status, job.current_step) == ("runpod", "completed", 3)
        assert (Path(job.output_dir or "") / "adapter_config.json").is_file()
    assert fake_runpod.live_pods() == []


def test_without_a_stored_key_the_cli_says_how_to_store_one(
    fake_runpod: FakeRunPod,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _needs_secret_service()
    point_app_at(fake_runpod, monkeypatch)
    CredentialStore(timeout_s=10).delete("runpod_api_key")
    config = _write(tmp_path / "cloud.json", json.loads(cloud_config().to_json()))
    assert main(["run", str(config), "--target", "runpod"]) == 2
    err = capsys.readouterr().err
    assert "no RunPod API key is stored" in err and "Settings" in err
    assert main(["pods"]) == 2
    assert fake_runpod.pods == {}


@pytest.mark.slow
def test_batch_prints_a_row_per_config_with_its_outcome(
    fake_runpod: FakeRunPod,
    stored_key: CredentialStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    monkeypatch.chdir(tmp_path)
    fake_runpod.set_stock("NVIDIA H100 80GB HBM3", "NONE")
    good = _write(tmp_path / "good.json", json.loads(cloud_config(max_steps=2).to_json()))
    sold_out = cloud_config(max_steps=2, gpu_type="NVIDIA H100 80GB HBM3")
    bad = _write(tmp_path / "bad.json", json.loads(sold_out.to_json()))
    code = main(["batch", str(good), str(bad), "--parallel", "2", "--target", "runpod"])
    out = capsys.readouterr().out
    assert code == 1  # one of them failed
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("config"))
    assert lines[header].split() == [
        "config", "method", "GPU", "steps", "final", "loss", "minutes", "dollars", "outcome"
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[header + 1 :]}
    assert "completed" in rows[str(good)] and "1x NVIDIA RTX A5000" in rows[str(good)]
    assert "2/2" in rows[str(good)]
    assert "failed" in rows[str(bad)]
    assert fake_runpod.live_pods() == []


def test_pods_lists_an_orphan_and_terminates_it(
    fake_runpod: FakeRunPod,
    stored_key: CredentialStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_app_at(fake_runpod, monkeypatch)

    async def orphan() -> str:
        # a pod Tunedeck made but lost (the app died between create and the store's update)
        async with RunPodClient(ACCOUNT_KEY, base_url=fake_runpod.url) as client:
            pod = await client.create_pod(
                PodRequest(
                    name="tunedeck-20260101-000000-abcdef",
                    image="img:1",
                    gpu_type_id="NVIDIA RTX A5000",
                    args="sleep 600",
                )
            )
            return pod.id

    pod_id = asyncio.run(orphan())
    assert main(["pods"]) == 0
    out = capsys.readouterr().out
    assert pod_id in out and "its job is not in the store" in out and "an hour" in out
    assert fake_runpod.live_pods() == [pod_id]  # listing changes nothing
    assert main(["pods", "--all-orphans"]) == 0
    assert f"pod {pod_id} terminated" in capsys.readouterr().out
    assert fake_runpod.live_pods() == []


@pytest.mark.slow
def test_batch_on_this_computer_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    good = _write(tmp_path / "one.json", json.loads(cloud_config(max_steps=2).to_json()))
    assert main(["batch", str(good)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(str(good)))
    assert "local" in row and "2/2" in row and "completed" in row and "0.00" in row


def test_resume_of_a_cloud_job_goes_to_runpod_and_needs_a_checkpoint(
    fake_runpod: FakeRunPod,
    stored_key: CredentialStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tunedeck resume` of a RunPod job goes through the RunPod launcher (a new pod from the
    job's checkpoint; test_cloud_resume.py runs one): without a checkpoint it says so and no
    pod is made."""
    point_app_at(fake_runpod, monkeypatch)
    monkeypatch.chdir(tmp_path)
    with Store() as store:
        job = create_job_for(store, cloud_config(), target="runpod")
        store.set_status(job.id, "cancelled")
    assert main(["resume", job.id[:8]]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint to continue from" in err, err
    assert fake_runpod.pods == {}
    with Store() as store:
        assert store.require_job(job.id).status == "cancelled"  # not reopened


@pytest.mark.slow
def test_resume_of_a_cancelled_runpod_job_continues_on_a_new_pod_with_the_run_display(
    fake_runpod: FakeRunPod,
    stored_key: CredentialStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Cancelled mid-run through the launcher, then `tunedeck resume JOB` from another folder:
    the checkpoint found where the job ran, the same progress and phase lines, two pods ended."""
    from app.core.ingest import Ingestor
    from tests.runpod.cloud_helpers import cloud_launcher, wait_for_points

    point_app_at(fake_runpod, monkeypatch)
    # long enough that the cancel lands mid-run even when the points reach the app late
    steps_in_all = 60
    cfg = cloud_config(max_steps=steps_in_all)
    (tmp_path / "elsewhere").mkdir()

    async def cancelled_mid_run() -> str:
        with Store() as store:
            async with cloud_launcher(store, Ingestor(store), tmp_path) as launcher:
                job = create_job_for(store, cfg, target="runpod")
                await launcher.start(job, cfg)
                await wait_for_points(store, job.id, 3)
                await asyncio.wait_for(launcher.cancel(job.id), 180)
                return job.id

    job_id = asyncio.run(asyncio.wait_for(cancelled_mid_run(), 240))
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["resume", job_id]) == 0
    out = capsys.readouterr().out
    assert "[runpod]" in out and "pod terminated" in out and "completed" in out, out
    assert "in all" in out  # the meter counts the first pod too
    with Store() as store:
        assert store.require_job(job_id).status == "completed"
        steps = [p["step"] for p in store.metrics(job_id)]
        assert steps == list(range(1, steps_in_all + 1)), (steps, store.alerts(job_id), out)
        assert len(store.list_resources(job_id=job_id)) == 2
    assert len(fake_runpod.pods) == 2 and fake_runpod.live_pods() == []
