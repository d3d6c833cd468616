"""Faults: a trainer killed with SIGKILL mid-run (issue 8).

A real run of the tiny model through the app's LocalLauncher, receiver and store. The trainer
gets no chance to say anything: the launcher must notice the death, mark the job failed and raise
the job_failed alert itself. ``launcher.resume`` then continues from the newest checkpoint, and
the chart's points after it come from the resumed run, each logging step once, none missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.launcher import create_job_for
from tests.reliability.conftest import AppStackFactory
from tests.ui.app_harness import until
from trainer.checkpoints import checkpoint_step, latest_complete_checkpoint
from trainer.events import EVENT_LOG_NAME

# the tiny model trains at about 25 steps a second: four checkpoints, each followed by 38 steps
# (well over a second) in which the test can catch the run past it and kill it
MAX_STEPS = 200
SAVE_STEPS = 40
LOGGING_STEPS = 2
FAIL_WITHIN_S = 60.0


def _when(point: dict[str, object]) -> float:
    return (
        datetime.strptime(str(point["timestamp"]), "%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(tzinfo=UTC)
        .timestamp()
    )


def _logged_steps(events: Path) -> list[int]:
    """Steps of the train_loss points in the trainer's event log so far."""
    if not events.exists():
        return []
    steps = []
    for raw in events.read_bytes().splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # a line being written
        data = event.get("data", {})
        if event.get("kind") == "metric" and "train_loss" in data:
            steps.append(data["step"])
    return steps


def _resumed_run_steps(events: Path, job_id: str) -> list[int]:
    """Metric steps the trainer wrote after its second job_started (the resumed run)."""
    starts, steps = 0, []
    for raw in events.read_bytes().splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # the line the kill cut short
        data = event.get("data", {})
        if event.get("kind") == "alert" and data.get("type") == "job_started":
            starts += 1
        elif event.get("kind") == "metric" and starts == 2 and "train_loss" in data:
            steps.append(data["step"])
    return steps


@pytest.mark.slow
def test_a_killed_trainer_fails_with_an_alert_and_resumes_without_a_gap(
    app_stack: AppStackFactory, tiny_run, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "killed"
    cfg = tiny_run(
        name="killed",
        max_steps=MAX_STEPS,
        save_steps=SAVE_STEPS,
        logging_steps=LOGGING_STEPS,
        output_dir=out,
    )

    async def scenario() -> None:
        async with app_stack() as stack:
            store, launcher = stack.store, stack.launcher
            job = create_job_for(store, cfg)
            await launcher.start(job, cfg)

            def past_a_checkpoint() -> bool:
                # the trainer's own log, not the store: the store lags by the delivery time,
                # which on a loaded machine is longer than the time between two checkpoints
                assert not store.require_job(job.id).is_final, "\n".join(stack.output[-20:])
                found = latest_complete_checkpoint(out, report=lambda _: None)
                logged = _logged_steps(out / EVENT_LOG_NAME)
                return found is not None and max(logged, default=0) > (checkpoint_step(found) or 0)

            await until(past_a_checkpoint, 240, "a checkpoint and a few steps after it")
            pid = store.require_job(job.id).pid
            assert pid is not None
            killed_at = time.time()
            os.killpg(pid, signal.SIGKILL)  # the trainer's own session: it and nothing else

            await until(lambda: store.require_job(job.id).is_final, FAIL_WITHIN_S, "failed")
            noticed_s = time.time() - killed_at
            failed = store.require_job(job.id)
            assert failed.status == "failed"
            assert "killed by signal 9" in (failed.error or "")
            [alert] = [a for a in store.alerts(job.id) if a["type"] == "job_failed"]
            assert "killed by signal 9" in alert["error_message"]
            print(f"FIGURE killed trainer marked failed with an alert after {noticed_s:.2f} s")

            checkpoint = latest_complete_checkpoint(out, report=lambda _: None)
            assert checkpoint is not None
            resumed_from = checkpoint_step(checkpoint) or 0
            before = {p["step"] for p in store.metrics(job.id) if "train_loss" in p}
            assert max(before) > resumed_from, "nothing was logged after the checkpoint"

            await launcher.resume(job.id)
            assert await asyncio.wait_for(launcher.wait(job.id), 300) == 0, "\n".join(
                stack.output[-20:]
            )
            done = store.require_job(job.id)
            assert done.status == "completed", done.error
            print(
                f"FIGURE killed at step {max(before)}, resumed from checkpoint-{resumed_from}, "
                f"completed {MAX_STEPS} steps"
            )

            points = [p for p in store.metrics(job.id) if "train_loss" in p]
            steps = [p["step"] for p in points]
            expected = list(range(LOGGING_STEPS, MAX_STEPS + 1, LOGGING_STEPS))
            # no gap and no duplicate on the chart: every logging step once, in order
            assert [s for s in steps if s % LOGGING_STEPS == 0] == expected
            assert len(steps) == len(set(steps))
            # the chart continues from the checkpoint: what was logged past it before the
            # kill was replaced by the resumed run's figures
            for p in points:
                assert (_when(p) > killed_at) == (p["step"] > resumed_from), p
            # and the resumed trainer itself began at the checkpoint, each step once
            assert _resumed_run_steps(out / EVENT_LOG_NAME, job.id) == [
                s for s in expected if s > resumed_from
            ]

    asyncio.run(scenario())
