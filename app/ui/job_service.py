"""What the main window asks of the core, in one small interface.

The window never talks to SQLite, a subprocess or the network itself (DESIGN.md §1); it calls
these methods. ``app.main.CoreJobService`` implements them over ``app.core`` (store, launchers);
keeping the window's needs in one place keeps the window independent of how the core spells
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from app.ui.jobs_model import JobRecord

if TYPE_CHECKING:
    from trainer.config import RunConfig


class JobService(Protocol):
    def list_jobs(self) -> Sequence[JobRecord]: ...

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        """Every stored metric point of the job, in step order."""
        ...

    def alerts(self, job_id: str) -> list[dict[str, Any]]: ...

    def log_text(self, job_id: str) -> str:
        """The job's output so far (its log file)."""
        ...

    def config(self, job_id: str) -> dict[str, Any] | None:
        """The config the job ran with."""
        ...

    def delete_job(self, job_id: str) -> None: ...

    def process_alive(self, job_id: str) -> bool:
        """Whether the job's trainer process still runs (it may, briefly, after its final
        alert: saving, flushing); resume and delete wait for it to end."""
        ...

    def targets(self) -> dict[str, str | None]:
        """Where a run can go: target -> None when available, else why not."""
        ...

    async def launch(self, config: RunConfig, target: str) -> str:
        """Record the job and start it; returns its id."""
        ...

    async def cancel(self, job_id: str) -> None:
        """Clean stop (checkpoint), then a kill after the grace period."""
        ...

    async def resume(self, job_id: str) -> None:
        """Restart a cancelled or failed job from its last checkpoint, as the same job."""
        ...
