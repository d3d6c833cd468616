"""The real trainer end to end: `tunedeck run` on the demo preset, and a receiver restart in
the middle of a run that loses no point (the trainer resends what the receiver missed)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_jobs import API_KEY, FAKE_TRAINER

from app.core.ingest import IngestEvent, Ingestor
from app.core.launcher import ReceiverAddress, create_job_for
from app.core.launcher_local import LocalLauncher
from app.core.receiver import ReceiverServer
from app.core.store import Store
from trainer.config import RunConfig, parse_config

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "resources" / "presets" / "demo-sft.json"


def demo_config(tmp_path: Path, **training: object) -> dict:
    """The demo preset, with its dataset found from anywhere and its output in tmp_path."""
    data = json.loads(PRESET.read_text())
    data["dataset"]["path"] = str(REPO / data["dataset"]["path"])
    data["output"]["output_dir"] = str(tmp_path / "outputs" / "{name}")
    data["training"].update(training)
    return data


@pytest.mark.slow
def test_tunedeck_run_trains_the_demo_preset(tmp_path: Path) -> None:
    cfg = tmp_path / "demo-sft.json"
    cfg.write_text(json.dumps(demo_config(tmp_path, max_steps=40)))
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "run", str(cfg)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[alert] Training started: demo-sft" in done.stdout
    assert "[alert] Training finished: demo-sft" in done.stdout
    assert "step 40/40" in done.stdout and "(demo-sft): completed" in done.stdout
    with Store() as store:
        [job] = store.list_jobs()
        points = store.metrics(job.id)
    # logging every 2 steps (and the first): a loss at each, eval at its steps
    steps = [p["step"] for p in points if "train_loss" in p]
    assert set(range(2, 41, 2)) <= set(steps) and steps[-1] == 40
    assert any("eval_loss" in p for p in points)
    assert (tmp_path / "outputs" / "demo-sft" / "events.jsonl").exists()


async def restart_mid_run(
    store: Store, tmp_path: Path, cfg: RunConfig, trainer_args: tuple[str, ...]
) -> str:
    ingestor = Ingestor(store)
    server = ReceiverServer(ingestor, store, api_key=API_KEY)
    port = await server.start()
    launcher = LocalLauncher(
        store,
        ingestor,
        receiver=ReceiverAddress(server.url, API_KEY),
        trainer_args=trainer_args,
        base_dir=tmp_path,
        poll_s=0.05,
    )
    job = create_job_for(store, cfg)
    await launcher.start(job, cfg)
    deadline = time.monotonic() + 180
    while (store.require_job(job.id).current_step or 0) < 6:
        assert time.monotonic() < deadline, "the run never reached step 6"
        assert launcher.status(job.id).running, store.require_job(job.id).error
        await asyncio.sleep(0.02)
    await server.stop()  # the desktop's receiver goes away mid-run...
    down_at = store.require_job(job.id).current_step
    await asyncio.sleep(1.5)
    # points that arrive while the trainer still runs were resent by it over HTTP (what the
    # launcher reads back from events.jsonl comes only after the process has ended)
    resent: set[int] = set()

    def heard(event: IngestEvent) -> None:
        if event.kind == "metrics" and launcher.status(job.id).running:
            resent.update(p["step"] for p in event.points)

    ingestor.subscribe(heard)
    again = ReceiverServer(ingestor, store, port=port, api_key=API_KEY)
    assert await again.start() == port  # ...and comes back where the trainer expects it
    try:
        assert await asyncio.wait_for(launcher.wait(job.id), 240) == 0
    finally:
        await launcher.close()
        await again.stop()
    job = store.require_job(job.id)
    assert (down_at or 0) < (job.total_steps or 0), "the receiver was not down mid-run"
    assert (down_at or 0) + 1 in resent, "the first point the receiver missed was not resent"
    return job.id


def test_a_receiver_restart_loses_no_point_fake_trainer(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STEPS", "150")
    monkeypatch.setenv("FAKE_STEP_S", "0.02")
    cfg = parse_config({"name": "restart", "output": {"output_dir": str(tmp_path / "out")}})
    job_id = asyncio.run(restart_mid_run(store, tmp_path, cfg, (str(FAKE_TRAINER),)))
    assert [p["step"] for p in store.metrics(job_id)] == list(range(1, 151))
    assert store.require_job(job_id).status == "completed"


@pytest.mark.slow
def test_a_receiver_restart_loses_no_point_real_trainer(store: Store, tmp_path: Path) -> None:
    data = demo_config(tmp_path, max_steps=150)
    data["logging"]["logging_steps"] = 1
    job_id = asyncio.run(restart_mid_run(store, tmp_path, parse_config(data), ("-m", "trainer")))
    steps = [p["step"] for p in store.metrics(job_id) if "train_loss" in p]
    assert steps == list(range(1, 151))
    job = store.require_job(job_id)
    assert job.status == "completed" and job.current_step == 150
    assert [a["type"] for a in store.alerts(job_id)][-1] == "job_completed"
