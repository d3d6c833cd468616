"""Shared set-up for the launcher's tests: the app pointed at the fake RunPod, a tiny run config,
and a launcher with short waits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.core.ingest import Ingestor
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
