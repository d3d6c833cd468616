"""Faults: the receiver goes down in the middle of a run and comes back (issue 8).

A real TRL run of the tiny model in a reporting session, posting to the app's own receiver
(ReceiverServer, Store, Ingestor, a job with a real token). The receiver is stopped a few steps
in and started again on the same port some steps later, while training goes on. The event log is
the record: every metric step it holds must be in the store exactly once, and must have crossed
the wire exactly once (nothing lost, nothing sent twice), and the outage must not stop training.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from transformers import TrainerCallback  # noqa: E402

# the one env-pointing receiver fixture (the app's receiver, started, env set), and its base
from tests.trainer.conftest import app_receiver, receiver  # noqa: E402, F401
from tests.trainer.live_receiver import LiveReceiver  # noqa: E402
from tests.trainer.reporting_runs import run_config, session_run  # noqa: E402
from trainer.events import EVENT_LOG_NAME  # noqa: E402
from trainer.reporting.event_log import iter_events  # noqa: E402

STEPS = 40
DOWN_AT_STEP = 8
UP_AT_STEP = 28
MIN_OUTAGE_S = 2.0  # long enough for several failed sends and backoff rounds


class Outage(TrainerCallback):  # type: ignore[misc]
    """Stops the receiver as step ``down`` begins and starts it again as step ``up`` begins."""

    def __init__(self, server: LiveReceiver, down: int, up: int) -> None:
        self.receiver, self.down, self.up = server, down, up
        self.stopped_at: float | None = None
        self.seconds = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step + 1
        if step == self.down:
            self.receiver.stop()
            self.stopped_at = time.monotonic()
        elif step == self.up and self.stopped_at is not None:
            # on a fast machine the steps between may take less than the wanted outage
            time.sleep(max(0.0, MIN_OUTAGE_S - (time.monotonic() - self.stopped_at)))
            self.receiver.start()  # the same port: the trainer's URL does not change
            self.seconds = time.monotonic() - self.stopped_at


def test_receiver_down_mid_run_then_up_gets_every_point_once(
    tiny_model_dir: Path,
    tmp_path: Path,
    receiver: LiveReceiver,  # noqa: F811 (the fixture imported above)
) -> None:
    out = tmp_path / "out"
    cfg = run_config(
        tiny_model_dir,
        out,
        training={"max_steps": STEPS},
        logging={"logging_steps": 1},
        checkpoint={"save_strategy": "no"},
        evaluation={"strategy": "no"},
    )
    outage = Outage(receiver, DOWN_AT_STEP, UP_AT_STEP)
    began = time.monotonic()
    run = session_run(cfg, tiny_model_dir, out, extra_callbacks=[outage])
    run_s = time.monotonic() - began
    assert run.error is None and run.trainer.state.global_step == STEPS  # training went on
    assert outage.seconds >= MIN_OUTAGE_S

    logged = [e["data"] for e in iter_events(out / EVENT_LOG_NAME) if e["kind"] == "metric"]
    logged_steps = [p["step"] for p in logged]
    assert logged_steps == list(range(1, STEPS + 1))
    during = [p for p in logged_steps if DOWN_AT_STEP <= p < UP_AT_STEP]

    sent = Counter(p["step"] for p in receiver.points())
    stored = Counter(p["step"] for p in receiver.stored_points())
    lost = sorted(set(logged_steps) - set(stored))
    twice = sorted(step for step, n in sent.items() if n > 1)
    print(
        f"\nreceiver outage: {outage.seconds:.1f} s, {len(during)} of {STEPS} points logged "
        f"while down; run {run_s:.1f} s; lost {len(lost)}, sent twice {len(twice)}"
    )
    assert lost == [] and twice == []
    assert stored == Counter(logged_steps)  # in the store exactly once, none foreign
    by_step = {p["step"]: p for p in receiver.stored_points()}
    for point in logged:  # what is stored is what was logged, field for field
        stored_point = by_step[point["step"]]
        assert {k: stored_point[k] for k in point} == point
    assert [a["type"] for a in receiver.alerts()] == ["job_started", "job_completed"]
    assert receiver.store.require_job(receiver.job.id).status == "completed"
