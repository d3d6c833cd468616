"""Fixtures for the RunPod tests: the published schema and a running fake RunPod server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runpod.fake_runpod import FakeRunPod, fake_runpod_server
from tests.runpod.schema import load_schema


@pytest.fixture(scope="session")
def runpod_schema() -> dict[str, Any]:
    return load_schema()


@pytest.fixture
def fake_runpod(runpod_schema: dict[str, Any], tmp_path: Path) -> Iterator[FakeRunPod]:
    """A fake RunPod on 127.0.0.1; fails the test at teardown on a schema violation (request or
    answer), a pod left not terminated, or a simulated pod process still alive."""
    with fake_runpod_server(tmp_path / "fake-runpod", runpod_schema) as fake:
        yield fake
