"""Reporting and run control around one training run.

(Interface stub: the reporting work fills this in. run.py depends only on what is here.)

    with reporting_session(cfg, execution_id=..., output_dir=...) as session:
        args.update(session.training_args_overrides)
        trainer = build(..., callbacks=session.callbacks)
        session.attach(trainer)
        trainer.train(resume_from_checkpoint=...)
    # on leaving: job_completed / job_cancelled / job_failed / gpu_oom sent, sender flushed

``session.stop_reason`` is None when training ran to its end, else "cancelled", "timeout" or
"loss_nan"; run.py then skips the final save (a checkpoint was written) and exits as the
reporting layer says (``session.exit_code``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import RunConfig


@dataclass
class ReportingSession:
    cfg: RunConfig
    execution_id: str
    output_dir: Path
    callbacks: list[Any] = field(default_factory=list)
    training_args_overrides: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    exit_code: int = 0

    def attach(self, trainer: Any) -> None:
        """Give the session the built trainer (for total steps, token counts)."""

    def alert(self, type_: str, **fields: Any) -> None:
        """Send an alert now (also written to the event log)."""


@contextmanager
def reporting_session(
    cfg: RunConfig, *, execution_id: str, output_dir: Path
) -> Iterator[ReportingSession]:
    yield ReportingSession(cfg=cfg, execution_id=execution_id, output_dir=output_dir)
