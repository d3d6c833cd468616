"""RunPod in the window, with real widgets offscreen: Run on RunPod when a key is stored, its
settings and GPU list in the form, the cost meter in the job view, the orphan pods dialog, and a
whole cloud run launched from the app through the fake RunPod."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QPushButton

from app.core.runpod.client import RunPodClient
from app.core.runpod.models import GpuType, PodRequest
from app.core.runpod.orphans import find_orphans, terminate_verified
from app.core.store import Store
from app.ui.job_view import JobView
from app.ui.pods_dialog import PodsDialog
from app.ui.presets import PresetLibrary
from app.ui.run_form import RUNPOD, RunDialog
from tests.runpod.cloud_helpers import cloud_config, point_app_at
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod, fake_runpod_server
from tests.ui.app_harness import MemoryCredentials, make_app, until

BOTH = {"local": None, "runpod": None}


@pytest.fixture
def fake_runpod(tmp_path: Path) -> Iterator[FakeRunPod]:
    """The fake RunPod (tests/runpod's fixture, which lives in that folder's conftest)."""
    with fake_runpod_server(tmp_path / "fake-runpod") as fake:
        yield fake


def _dialog(qtbot: Any, tmp_path: Path, **kwargs: Any) -> RunDialog:
    dialog = RunDialog(PresetLibrary(tmp_path / "presets"), **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_runpod_settings_show_only_for_runpod_and_the_gpu_pick_lands_in_the_config(
    qtbot: Any, tmp_path: Path
) -> None:
    dialog = _dialog(qtbot, tmp_path, targets=BOTH)
    form = dialog.form
    assert not form.section_shown("runpod") and not form.field_shown("runpod.gpu_type")
    assert not dialog.gpu_picker.isVisible()
    dialog.set_target(RUNPOD)
    assert form.section_shown("runpod") and form.field_shown("runpod.budget_usd")
    assert dialog.gpu_picker.isVisible()
    # the shipped table: memory and price in each line, availability unknown without a key
    combo = dialog.gpu_picker.combo
    lines = [combo.itemText(i) for i in range(combo.count())]
    assert any("RTX A6000 · 48 GB · $0.49/h" in line for line in lines), lines
    assert "table of" in dialog.gpu_picker.source.text()
    index = combo.findData("NVIDIA A40")
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    assert dialog.result_config().runpod.gpu_type == "NVIDIA A40"
    # the estimate follows GPU count, max runtime and the budget
    form.set_value("runpod.gpu_count", 2)
    form.set_value("runtime.max_runtime_minutes", 90)
    estimate = dialog.gpu_picker.estimate.text()
    assert "$0.80 an hour for 2 GPUs" in estimate and "at most $1.20" in estimate, estimate
    assert "budget" in estimate
    assert "terminates itself after 15 minutes" in dialog.gpu_picker.guard.text()
    dialog.set_target("local")
    assert not form.section_shown("runpod")


def test_without_a_key_runpod_is_shown_greyed_with_the_reason(qtbot: Any, tmp_path: Path) -> None:
    reason = "Add a RunPod API key in Settings (Credentials) to run on a cloud GPU."
    dialog = _dialog(qtbot, tmp_path, targets={"local": None, "runpod": reason})
    combo = dialog.target_combo
    item = combo.model().item(combo.findData(RUNPOD))  # type: ignore[attr-defined]
    assert not item.isEnabled() and item.toolTip() == reason
    assert dialog.target == "local"


def test_the_live_catalog_shows_stock_and_greys_out_what_is_sold_out(
    qtbot: Any, tmp_path: Path
) -> None:
    gpus = [
        GpuType("G1", "Small", 24, 0.3, 0.2, "HIGH", 8),
        GpuType("G2", "Big", 80, 2.0, None, "NONE", 8),
    ]
    dialog = _dialog(qtbot, tmp_path, targets=BOTH, gpus=gpus, gpu_source="from RunPod now")
    dialog.set_target(RUNPOD)
    combo = dialog.gpu_picker.combo
    assert combo.itemText(combo.findData("G1")) == "Small · 24 GB · $0.30/h · stock high"
    sold_out = combo.model().item(combo.findData("G2"))  # type: ignore[attr-defined]
    assert "out of stock" in sold_out.text() and not sold_out.isEnabled()


def test_the_job_view_shows_the_cost_meter_of_a_cloud_job(qtbot: Any) -> None:
    view = JobView()
    qtbot.addWidget(view)
    view.meter_source = lambda job_id: "training · $0.42 of $10.00 · $0.69/h" if job_id else None
    job = _job_record("j1")
    view.show_job(job)
    assert view.meter.text() == "RunPod: training · $0.42 of $10.00 · $0.69/h"
    view.meter_source = lambda job_id: None
    view.show_job(job)
    assert view.meter.isHidden()


def _job_record(job_id: str) -> Any:
    from app.core.jobs import Job

    return Job(
        id=job_id,
        name="cloud",
        method="sft",
        model="m",
        target="runpod",
        status="queued",
        config_json="{}",
        created_at=0.0,
    )


async def _make_orphan(fake: FakeRunPod) -> str:
    """A pod Tunedeck made but lost track of (on the qasync loop: asyncio.run would drop it)."""
    async with RunPodClient(ACCOUNT_KEY, base_url=fake.url) as client:
        pod = await client.create_pod(
            PodRequest(
                name="tunedeck-20260101-000000-abcdef",
                image="img:1",
                gpu_type_id="NVIDIA RTX A5000",
                args="sleep 600",
            )
        )
        return pod.id


def test_the_pods_dialog_lists_an_orphan_and_terminates_it_in_one_click(
    qtbot: Any, qloop: Any, fake_runpod: FakeRunPod, tmp_path: Path
) -> None:
    pod_id = qloop.run_until_complete(_make_orphan(fake_runpod))
    store = Store(tmp_path / "store.sqlite")
    client = RunPodClient(ACCOUNT_KEY, base_url=fake_runpod.url)
    dialog = PodsDialog(
        lambda: find_orphans(client, store),
        lambda pod: terminate_verified(client, pod, store=store, verify_interval_s=0.05),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qloop.run_until_complete(dialog.refresh())
    assert dialog.table.rowCount() == 1
    assert dialog.table.item(0, 0).text() == pod_id
    assert "not in the store" in dialog.table.item(0, 4).text()
    assert "$" in dialog.summary.text() and "an hour" in dialog.summary.text()
    button = dialog.table.cellWidget(0, 5)
    assert isinstance(button, QPushButton)
    button.click()
    qloop.run_until_complete(until(lambda: dialog.table.rowCount() == 0, 10, "terminated"))
    assert fake_runpod.live_pods() == []
    assert "No pod bills" in dialog.summary.text()
    qloop.run_until_complete(client.aclose())
    store.close()


class RunPodCredentials(MemoryCredentials):
    async def get_async(self, name: str) -> str | None:
        return ACCOUNT_KEY if name == "runpod_api_key" else None

    def known_values(self) -> frozenset[str]:
        return super().known_values() | {ACCOUNT_KEY}


@pytest.mark.slow
def test_the_app_runs_a_job_on_runpod_and_offers_the_orphans_at_start(
    qtbot: Any,
    qloop: Any,
    fake_runpod: FakeRunPod,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The composition root with a key stored: the start-up check shows an orphan pod; Run on
    RunPod is enabled; a tiny run goes through the JobService to a pod, its points reach the
    store by polling, the adapter comes home and the pod ends terminated."""
    point_app_at(fake_runpod, monkeypatch)
    tunedeck = make_app(tmp_path)
    tunedeck.credentials = RunPodCredentials()
    window = tunedeck.window
    qtbot.addWidget(window)
    window.show()
    config = cloud_config(max_steps=3)

    # one coroutine from start to stop: qasync runs tasks only while its loop runs
    async def scenario() -> tuple[str, str]:
        orphan = await _make_orphan(fake_runpod)
        await tunedeck.start()
        try:
            assert tunedeck.service is not None
            assert tunedeck.service.targets()["runpod"] is None
            dialog = await until(lambda: tunedeck.pods_dialog, 20, "the orphan pods dialog")
            await until(lambda: dialog.table.rowCount() == 1, 20, "the orphan in the dialog")
            assert dialog.table.item(0, 0).text() == orphan
            dialog.terminate_all_button.click()
            await until(lambda: fake_runpod.live_pods() == [], 20, "the orphan terminated")
            dialog.close()
            job_id = await window.launch(config, "runpod")
            await until(
                lambda: tunedeck.store.require_job(job_id).is_final, 180, "the cloud run's end"
            )
            await until(lambda: not tunedeck.service.process_alive(job_id), 60, "the pod's end")
            window.select_job(job_id)
            # RunPod's live catalog (with stock) replaced the shipped table for the form
            gpus, source = tunedeck.service.gpu_choices()
            assert gpus and all(g.stock is not None for g in gpus) and "RunPod now" in source
            return job_id, window.job_view.meter.text()
        finally:
            await tunedeck.stop()

    job_id, meter = qloop.run_until_complete(scenario())
    store = Store()
    job = store.require_job(job_id)
    assert job.status == "completed", job.error
    assert store.metric_count(job_id) == 3
    assert (Path(job.output_dir or "") / "adapter_model.safetensors").is_file()
    assert meter.startswith("RunPod: pod terminated · $"), meter
    assert fake_runpod.live_pods() == []
    # the stored config (the job view's Config tab) holds no secret
    assert ACCOUNT_KEY not in job.config_json
    store.close()


def test_the_users_own_pods_get_a_note_at_start_not_a_dialog(
    qtbot: Any, qloop: Any, fake_runpod: FakeRunPod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    tunedeck = make_app(tmp_path)
    tunedeck.credentials = RunPodCredentials()
    qtbot.addWidget(tunedeck.window)

    async def scenario() -> tuple[list[Any], str]:
        async with RunPodClient(ACCOUNT_KEY, base_url=fake_runpod.url) as client:
            pod = await client.create_pod(
                PodRequest(name="my-jupyter", image="img:1", gpu_type_id="NVIDIA RTX A5000")
            )
        await tunedeck.start()
        try:
            orphans = await tunedeck.check_orphans()
            return orphans, tunedeck.window.statusBar().currentMessage()
        finally:
            await tunedeck.stop()
            async with RunPodClient(ACCOUNT_KEY, base_url=fake_runpod.url) as client:
                await client.terminate_pod(pod.id)

    orphans, note = qloop.run_until_complete(scenario())
    assert [o.pod.name for o in orphans] == ["my-jupyter"]
    assert tunedeck.pods_dialog is None
    assert "1 other pod(s) on your RunPod account" in note
