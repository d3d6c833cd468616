"""Reporting and run control around one training run.

    with reporting_session(cfg, execution_id=..., output_dir=...) as session:
        args.update(session.training_args_overrides)
        trainer = build(..., callbacks=session.callbacks)
        session.attach(trainer)
        trainer.train(resume_from_checkpoint=...)
    # on leaving: job_completed / job_cancelled / job_failed / gpu_oom sent, sender flushed

``session.stop_reason`` is None when training ran to its end, else "cancelled" (SIGINT/SIGTERM),
"timeout" (max_runtime) or "loss_nan"; run.py then skips the final save (a checkpoint was written,
or for NaN must not be) and exits as ``session.exit_code`` says: 0 for an end, a cancel or a
timeout, ``EXIT_LOSS_NAN`` for a diverged run, ``EXIT_FAILED`` or ``128 + signal`` otherwise.

Final alert per outcome: end -> job_completed (loss, duration); cancel -> job_cancelled (status
"cancelled"); max_runtime -> job_cancelled (status "timeout"); NaN -> loss_nan then job_failed
(error_type "loss_nan"); CUDA OOM -> gpu_oom (advice) then job_failed; any other exception ->
job_failed (error_type, error_message, traceback tail), then the exception propagates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.reporting.control import RunControl
from trainer.reporting.disk_full import disk_full_fields
from trainer.reporting.failures import failure_fields, is_cuda_oom, oom_advice
from trainer.reporting.reporter import Reporter

log = logging.getLogger("trainer.reporting")

EXIT_FAILED = 1
EXIT_LOSS_NAN = 3
FLUSH_SECONDS = 5.0  # bound on delivering what is left when the run ends
EMERGENCY_FLUSH_SECONDS = 1.0  # bound after a second signal


@dataclass
class ReportingSession:
    cfg: RunConfig
    execution_id: str
    output_dir: Path
    callbacks: list[Any] = field(default_factory=list)
    training_args_overrides: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    exit_code: int = 0
    reporter: Reporter = field(init=False)
    control: RunControl = field(init=False)
    trainer: Any = None
    current_step: int = 0
    total_steps: int | None = None
    last_checkpoint: str | None = None
    started: float = field(default_factory=time.monotonic)
    _started_sent: bool = False

    def __post_init__(self) -> None:
        from trainer.reporting.callback import ReportingCallback

        self.reporter = Reporter.from_env(
            execution_id=self.execution_id,
            output_dir=self.output_dir,
            default_model_name=self.cfg.model.name_or_path,
        )
        runtime = self.cfg.runtime
        limit = runtime.max_runtime_minutes
        self.control = RunControl(
            max_runtime_s=None if limit is None else limit * 60.0,
            warning_margin_s=runtime.timeout_warning_minutes * 60.0,
            on_warning=self._timeout_warning,
            on_emergency_exit=self._emergency_exit,
        )
        self.callback = ReportingCallback(self)
        self.callbacks.append(self.callback)

    # -- public interface (run.py) -----------------------------------------------------------

    def attach(self, trainer: Any) -> None:
        """Give the session the built trainer: it counts samples/tokens and watches the loss."""
        from trainer.reporting.throughput import is_paired_trainer

        self.trainer = trainer
        callback = self.callback
        callback.meter.paired = is_paired_trainer(trainer)
        original = trainer.training_step

        def training_step(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            callback.meter.count(inputs)
            loss = original(model, inputs, *args, **kwargs)
            callback.observe_loss(loss, trainer.state.global_step)
            return loss

        trainer.training_step = training_step

    def alert(self, type_: str, **fields: Any) -> None:
        """Send an alert now (also written to the event log). Thread-safe."""
        fields.setdefault("current_step", self.current_step)
        if self.total_steps:
            fields.setdefault("total_steps", self.total_steps)
            fields.setdefault("progress", round(min(1.0, self.current_step / self.total_steps), 4))
        self.reporter.alert(type_, **fields)

    def phase_callback(self, phase: str) -> Any:
        """A callback for a preliminary phase's own trainer (rlhf's reward model): its figures
        reported as ``phase/...`` fields, and stop requests honoured at its step ends."""
        from trainer.reporting.phase import PhaseCallback

        return PhaseCallback(self, phase)

    # -- from the callbacks ------------------------------------------------------------------

    def phase_started(self, phase: str) -> None:
        """A preliminary phase began: the job is running from here on."""
        if not self._started_sent:
            self._started_sent = True
            self.alert("job_started", status="running", message=f"training {phase} first")

    def phase_stopped(self, phase: str, reason: str) -> None:
        """A stop request ended a preliminary phase: the run stops before its main phase."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.info("stop requested (%s) during %s; the main phase will not start", reason, phase)

    def training_started(self, state: Any) -> None:
        self.total_steps = int(state.max_steps) or None
        self.current_step = int(state.global_step)
        extra = {"resumed_from_step": self.current_step} if self.current_step else {}
        if self._started_sent:
            return  # a preliminary phase sent it; later alerts carry total_steps
        self._started_sent = True
        self.alert("job_started", status="running", **extra)

    def training_stopped(self, reason: str, state: Any) -> None:
        self.current_step = int(state.global_step)
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        if reason == "loss_nan":
            kept = self.last_checkpoint or _newest_checkpoint(self.output_dir)
            self.alert(
                "loss_nan",
                status="failed",
                message=f"training loss became NaN or infinite at step {self.current_step}; the "
                f"run stopped without saving that state. Last good checkpoint: {kept or 'none'}. "
                "Lower training.learning_rate, keep training.max_grad_norm above 0, prefer bf16 "
                "to fp16, and check for rows whose completion is cut away by max_length.",
                last_good_checkpoint=kept,
            )

    def checkpoint_saved(self, state: Any) -> None:
        self.current_step = int(state.global_step)
        folder = self.output_dir / f"checkpoint-{state.global_step}"
        if self.trainer is not None:
            folder = Path(self.trainer.args.output_dir) / f"checkpoint-{state.global_step}"
        self.last_checkpoint = str(folder)

    # -- ends ----------------------------------------------------------------------------------

    def _duration_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _sync_step(self) -> None:
        if self.trainer is not None:
            self.current_step = int(self.trainer.state.global_step)

    def finish(self) -> None:
        """The with-block ended without an exception."""
        self._sync_step()
        cb = self.callback
        if self.stop_reason is None:
            fields: dict[str, Any] = {"status": "completed", "duration": self._duration_ms()}
            if cb.last_train_loss is not None:
                fields["loss"] = cb.last_train_loss
            if cb.last_eval_loss is not None:
                fields["eval_loss"] = cb.last_eval_loss
            if cb.average_train_loss is not None:
                fields["average_loss"] = cb.average_train_loss
            self.alert("job_completed", **fields)
            self.exit_code = 0
        elif self.stop_reason in ("cancelled", "timeout"):
            limit = self.cfg.runtime.max_runtime_minutes
            why = (
                "stopped on request"
                if self.stop_reason == "cancelled"
                else f"stopped at runtime.max_runtime_minutes ({limit:g})"
            )
            self.alert(
                "job_cancelled",
                status=self.stop_reason,
                duration=self._duration_ms(),
                loss=cb.last_train_loss,
                checkpoint=self.last_checkpoint,
                message=f"{why} at step {self.current_step}; checkpoint "
                f"{self.last_checkpoint or '(none)'}. Resume with "
                "checkpoint.resume_from_checkpoint = 'latest'.",
            )
            self.exit_code = 0
        else:  # loss_nan
            self.alert(
                "job_failed",
                status="failed",
                duration=self._duration_ms(),
                error_type="loss_nan",
                error_message=f"training loss became NaN or infinite at step {self.current_step}",
            )
            self.exit_code = EXIT_LOSS_NAN

    def fail(self, exc: BaseException) -> None:
        """The with-block raised ``exc`` (it propagates after this)."""
        self._sync_step()
        if isinstance(exc, KeyboardInterrupt):
            self.alert("job_cancelled", status="interrupted", duration=self._duration_ms())
            self.exit_code = 130
            return
        fields = failure_fields(exc)
        fields.update(disk_full_fields(exc, self.output_dir))  # a full disk, said plainly
        if is_cuda_oom(exc):
            advice = oom_advice(self.cfg)
            self.alert(
                "gpu_oom",
                status="failed",
                error_type=fields["error_type"],
                error_message=fields["error_message"],
                message="The GPU ran out of memory. Try: " + "; ".join(advice),
                advice=advice,
            )
        self.alert("job_failed", status="failed", duration=self._duration_ms(), **fields)
        self.exit_code = EXIT_FAILED

    # -- from other threads / signal handlers --------------------------------------------------

    def _timeout_warning(self, seconds_left: float) -> None:
        limit = self.cfg.runtime.max_runtime_minutes
        self.alert(
            "timeout_warning",
            status="running",
            seconds_left=round(seconds_left, 1),
            message=f"runtime.max_runtime_minutes ({limit:g}) is reached in "
            f"{seconds_left / 60:.1f} min; the run will then stop with a checkpoint",
        )

    def _emergency_exit(self, code: int) -> None:
        # In a helper thread: a lock the interrupted main thread holds must not hang the exit.
        sender = threading.Thread(
            target=self.reporter.alert,
            args=("job_cancelled",),
            kwargs={
                "status": "killed",
                "current_step": self.current_step,
                "message": "a second stop signal ended the run at once, without a checkpoint",
            },
            daemon=True,
        )
        sender.start()
        sender.join(0.3)
        for lane in self.reporter.lanes():
            lane.begin_emergency_close()
        end = time.monotonic() + EMERGENCY_FLUSH_SECONDS
        while self.reporter.pending() and time.monotonic() < end:
            time.sleep(0.02)


def _newest_checkpoint(output_dir: Path) -> str | None:
    found = []
    for p in output_dir.glob("checkpoint-*"):
        suffix = p.name.removeprefix("checkpoint-")
        if suffix.isdigit():
            found.append((int(suffix), p))
    return str(max(found)[1]) if found else None


@contextmanager
def reporting_session(
    cfg: RunConfig, *, execution_id: str, output_dir: Path
) -> Iterator[ReportingSession]:
    session = ReportingSession(cfg=cfg, execution_id=execution_id, output_dir=Path(output_dir))
    session.control.install()
    try:
        yield session
    except BaseException as exc:
        _report_safely(session.fail, exc)
        raise
    else:
        _report_safely(session.finish)
    finally:
        session.control.uninstall()
        session.reporter.close(FLUSH_SECONDS)


def _report_safely(report: Any, *args: Any) -> None:
    # Reporting an outcome must never replace the run's own exception or exit with a new one.
    try:
        report(*args)
    except Exception:
        log.exception("could not report the run's outcome")
