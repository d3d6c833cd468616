"""Shared set-up for the launcher's tests: the app pointed at the fake RunPod, a tiny run config,
and a launcher with short waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.core.ingest import Ingestor
from app.core.launcher import create_job_for
from app.core.runpod.client import RunPodClient
from app.core.runpod.endpoints import API_URL_ENV, PROXY_TEMPLATE_ENV, runpod_endpoints
from app.core.runpod.launcher import RunPodLauncher, Timeouts
from app.core.store import Store
from tests.runpod.agent_fixtures import tiny_run_config
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod
from trainer.config import RunConfig, parse_config

FAST = Timeouts(
    provision_s=60.0,
    pod_check_s=0.1,
    final_alert_s=60.0,
    verify_s=0.05,
    transfer_retry_s=30.0,
    collect_on_failure_s=5.0,
)
RUN_TIMEOUT_S = 180.0


def point_app_at(fake: FakeRunPod, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's endpoints to the fake; simulated pods use this venv's trainer (no pip)."""
    monkeypatch.setenv(API_URL_ENV, fake.url)
    monkeypatch.setenv(PROXY_TEMPLATE_ENV, fake.proxy_template)
    # relative: each simulated pod keeps its agent's files in its own folder
    fake.extra_pod_env.update(
        {"TUNEDECK_AGENT_SKIP_INSTALL": "1", "TUNEDECK_AGENT_HOME": "agent-home"}
    )


def cloud_config(max_steps: int = 4, **runpod: Any) -> RunConfig:
    data = tiny_run_config(max_steps, save_steps=2)
    data["name"] = "cloud-test"
    data["runpod"] = {"gpu_type": "NVIDIA RTX A5000", "poll_interval_s": 0.2, **runpod}
    return parse_config(data)


@contextlib.asynccontextmanager
async def cloud_launcher(
    store: Store, ingestor: Ingestor, base_dir: Path, **options: Any
) -> AsyncIterator[RunPodLauncher]:
    endpoints = runpod_endpoints()
    async with RunPodClient(ACCOUNT_KEY, base_url=endpoints.api_url) as client:
        launcher = RunPodLauncher(
            store,
            ingestor,
            client,
            endpoints=endpoints,
            base_dir=base_dir,
            timeouts=options.pop("timeouts", FAST),
            **options,
        )
        try:
            yield launcher
        finally:
            await launcher.close()


async def wait_for_points(
    store: Store, job_id: str, count: int, timeout_s: float = RUN_TIMEOUT_S
) -> None:
    """Until the job has ``count`` points; fails if it ends first or time is up."""
    deadline = time.monotonic() + timeout_s
    while store.metric_count(job_id) < count:
        job = store.require_job(job_id)
        assert not job.is_final, f"the job ended ({job.status}) before {count} points: {job.error}"
        assert time.monotonic() < deadline, f"fewer than {count} points in {timeout_s} s"
        await asyncio.sleep(0.1)


def run_to_end(store: Store, cfg: RunConfig, base_dir: Path) -> str:
    """A cloud job for ``cfg`` started with a fresh launcher and followed to its end; its id."""

    async def run() -> str:
        async with cloud_launcher(store, Ingestor(store), base_dir) as launcher:
            job = create_job_for(store, cfg, target="runpod")
            await launcher.start(job, cfg)
            await asyncio.wait_for(launcher.wait(job.id), RUN_TIMEOUT_S)
            return job.id

    return asyncio.run(run())
