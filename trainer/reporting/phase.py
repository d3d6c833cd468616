"""A preliminary training phase inside one run, such as rlhf's reward model.

Its figures are reported under the phase's name (``reward_model/loss`` at the phase's step): since
points are idempotent by (job, step), prefixed fields merge with the main phase's points at the
same step and never overwrite them; the desktop charts them as the phase's own panel. A stop
request (signal, max_runtime) ends the phase at the end of its current step; the run then stops
before the main phase starts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from trainer.reporting.callback import _agree_across_ranks

if TYPE_CHECKING:
    from trainer.reporting.session import ReportingSession

# the summary train() logs at its very end is not a per-interval figure
_SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second"})


class PhaseCallback(TrainerCallback):
    def __init__(self, session: ReportingSession, phase: str) -> None:
        self.session = session
        self.phase = phase
        self.stopped_by: str | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.session.phase_started(self.phase)
        return control

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        if not logs or _SUMMARY_KEYS & logs.keys():
            return control
        fields = {
            f"{self.phase}/{key}": float(value)
            for key, value in logs.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            if math.isfinite(value)
        }
        if fields:
            self.session.reporter.metric({"step": int(state.global_step), **fields})
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        reason = _agree_across_ranks(self.session.control.stop_reason(), args)
        if reason is not None:
            control.should_training_stop = True
            self.stopped_by = reason
            self.session.phase_stopped(self.phase, reason)
        return control
