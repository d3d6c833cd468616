"""Resume of a cloud job from the window: the action is offered for a cancelled RunPod job and
the window's job service hands it to the RunPod launcher (a new pod from the job's checkpoint,
run end to end in tests/runpod/test_cloud_resume.py); without a checkpoint it says so and no pod
is made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.launcher import LaunchError, create_job_for
from tests.runpod.cloud_helpers import cloud_config, point_app_at
from tests.runpod.fake_runpod import FakeRunPod, fake_runpod_server
from tests.ui.app_harness import make_app
from tests.ui.test_runpod_form import RunPodCredentials


@pytest.fixture
def fake_runpod(tmp_path: Path) -> Iterator[FakeRunPod]:
    with fake_runpod_server(tmp_path / "fake-runpod") as fake:
        yield fake


def test_the_window_resumes_a_cloud_job_through_the_runpod_launcher(
    qtbot: Any, qloop: Any, fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    tunedeck = make_app(tmp_path)
    tunedeck.credentials = RunPodCredentials()
    window = tunedeck.window
    qtbot.addWidget(window)

    async def scenario() -> tuple[bool, LaunchError, str]:
        await tunedeck.start()
        try:
            assert tunedeck.service is not None and tunedeck.service.runpod is not None
            job = create_job_for(tunedeck.store, cloud_config(), target="runpod")
            tunedeck.store.set_status(job.id, "cancelled")
            window.refresh_job(job.id)
            window.select_job(job.id)
            enabled = window.resume_action.isEnabled()
            with pytest.raises(LaunchError) as err:
                await tunedeck.service.resume(job.id)
            return enabled, err.value, tunedeck.store.require_job(job.id).status
        finally:
            await tunedeck.stop()

    enabled, err, status = qloop.run_until_complete(scenario())
    assert enabled
    assert "no complete checkpoint to continue from" in str(err), err
    assert status == "cancelled" and fake_runpod.pods == {}
