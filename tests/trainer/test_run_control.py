"""Run control on real TRL training: SIGTERM then resume, max_runtime, the second signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from transformers import TrainerCallback  # noqa: E402

from tests.trainer.live_receiver import LiveReceiver  # noqa: E402
from tests.trainer.reporting_runs import run_config, session_run  # noqa: E402
from trainer.events import EVENT_LOG_NAME  # noqa: E402
from trainer.reporting.event_log import iter_events  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class SignalDuringStep(TrainerCallback):  # type: ignore[misc]
    """Sends ``sig`` to this process (``copies`` times at once) while step ``step`` runs."""

    def __init__(self, step: int, sig: int = signal.SIGTERM, copies: int = 1) -> None:
        self.step, self.sig, self.copies, self.sent = step, sig, copies, False

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step + 1 == self.step and not self.sent:
            self.sent = True
            for _ in range(self.copies):
                os.kill(os.getpid(), self.sig)


def test_sigterm_saves_reports_cancel_and_resume_finishes_the_plan(
    tiny_model_dir: Path, tmp_path: Path, receiver: LiveReceiver
) -> None:
    out = tmp_path / "out"
    cfg = run_config(tiny_model_dir, out, checkpoint={"save_steps": 100})
    before = signal.getsignal(signal.SIGTERM)

    # two copies at once, as a signal to the process group plus a launcher's forwarded copy
    # arrive: still one clean stop, not an immediate exit
    signals = SignalDuringStep(3, copies=2)
    first = session_run(cfg, tiny_model_dir, out, extra_callbacks=[signals])
    assert first.error is None
    assert first.session.stop_reason == "cancelled" and first.session.exit_code == 0
    assert first.trainer.state.global_step == 3  # the step under way was finished, no more
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()
    [cancelled] = receiver.alerts("job_cancelled")
    assert cancelled["status"] == "cancelled" and cancelled["current_step"] == 3
    assert cancelled["checkpoint"].endswith("checkpoint-3")
    assert signal.getsignal(signal.SIGTERM) is before  # the session gave the signal back
    seq_after_first = max(e["seq"] for e in iter_events(out / EVENT_LOG_NAME))

    second = session_run(cfg, tiny_model_dir, out, resume=str(out / "checkpoint-3"))
    assert second.error is None and second.session.stop_reason is None
    assert second.trainer.state.global_step == 8  # the planned total, not 3 + 8
    resumed = [
        e["data"]["step"]
        for e in iter_events(out / EVENT_LOG_NAME, after=seq_after_first)
        if e["kind"] == "metric"
    ]
    assert resumed and min(resumed) > 3  # no step was trained twice

    [started, restarted] = receiver.alerts("job_started")
    assert "resumed_from_step" not in started
    assert restarted["resumed_from_step"] == 3 and restarted["total_steps"] == 8
    assert receiver.alerts("job_completed")
    steps = Counter(p["step"] for p in receiver.points() if "train_loss" in p)
    assert sorted(steps) == [1, 2, 4, 6, 8] and max(steps.values()) == 1
    seqs = [e["seq"] for e in iter_events(out / EVENT_LOG_NAME)]
    assert seqs == list(range(1, len(seqs) + 1))  # one numbering across both processes
    assert len(seqs) > seq_after_first


def test_max_runtime_warns_then_stops_cleanly_with_a_checkpoint(
    tiny_model_dir: Path, tmp_path: Path, receiver: LiveReceiver
) -> None:
    out = tmp_path / "out"
    cfg = run_config(
        tiny_model_dir,
        out,
        training={"max_steps": 100_000},
        checkpoint={"save_steps": 100_000},
        evaluation={"strategy": "no"},
        runtime={"max_runtime_minutes": 0.05, "timeout_warning_minutes": 0.025},  # 3 s, 1.5 s
    )
    began = time.monotonic()
    run = session_run(cfg, tiny_model_dir, out)
    elapsed = time.monotonic() - began
    assert run.error is None
    assert run.session.stop_reason == "timeout" and run.session.exit_code == 0
    assert 3.0 <= elapsed < 10.0
    step = run.trainer.state.global_step
    assert 0 < step < 100_000
    assert (out / f"checkpoint-{step}" / "trainer_state.json").is_file()
    types = [a["type"] for a in receiver.alerts()]
    assert types == ["job_started", "timeout_warning", "job_cancelled"]
    [warning] = receiver.alerts("timeout_warning")
    assert 0 < warning["seconds_left"] <= 1.5
    assert warning["current_step"] < step  # it came ahead of the stop, while training
    [cancelled] = receiver.alerts("job_cancelled")
    assert cancelled["status"] == "timeout" and cancelled["current_step"] == step


SECOND_SIGNAL_SCRIPT = """
import sys, time
from pathlib import Path
from trainer.config import parse_config
from trainer.reporting.session import reporting_session

with reporting_session(parse_config({}), execution_id="e", output_dir=Path(sys.argv[1])) as s:
    print("ready", flush=True)
    while True:  # one very long step: a first signal alone would wait for its end
        time.sleep(0.05)
"""


def test_a_second_signal_exits_at_once(tmp_path: Path, receiver: LiveReceiver) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SECOND_SIGNAL_SCRIPT, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.3)  # later than REPEAT_GRACE_S: a second request, not a copy of the first
        assert proc.poll() is None  # the first signal only asks for a stop at the step's end
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = proc.wait(10)
        assert time.monotonic() - began < 3.0
    finally:
        proc.kill()
        proc.wait()
    assert code == 128 + signal.SIGTERM
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "stopping after the current step" in stderr and "exiting now" in stderr
    [killed] = receiver.alerts("job_cancelled")
    assert killed["status"] == "killed"
    logged = [e["data"]["type"] for e in iter_events(tmp_path / EVENT_LOG_NAME)]
    assert logged == ["job_cancelled"]
