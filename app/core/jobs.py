"""The job model: what a job is, the statuses it passes through, and which moves are allowed.

A job is queued when it is created, running once its trainer reports ``job_started``, and ends
completed, failed or cancelled. A final status is final: a late or repeated alert never moves a
job out of it. Only an explicit resume (``Store.reopen_job``) starts a finished job again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Literal

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
Target = Literal["local", "runpod"]

STATUSES: tuple[Status, ...] = ("queued", "running", "completed", "failed", "cancelled")
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
TARGETS: tuple[Target, ...] = ("local", "runpod")

# What each alert type does to the job's status; alert types not listed leave it alone.
STATUS_AFTER_ALERT: dict[str, Status] = {
    "job_started": "running",
    "job_completed": "completed",
    "job_failed": "failed",
    "job_cancelled": "cancelled",
}


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} in the store")
        self.job_id = job_id
        self.hint = "List the jobs with `tunedeck jobs`."


def format_duration(seconds: float, *, always_hours: bool = False) -> str:
    """``1:02:03``, or ``2:03`` under an hour unless ``always_hours`` (ETAs then line up)."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours or always_hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def can_move(current: str, new: str) -> bool:
    """Whether a job may go from ``current`` to ``new`` (never out of a final status)."""
    if current == new:
        return True
    if is_final(current):
        return False
    # queued -> running -> final; queued -> final directly (failed before it started)
    return not (current == "running" and new == "queued")


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    method: str
    model: str
    target: str
    status: str
    config_json: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    output_dir: str | None = None
    log_path: str | None = None
    pid: int | None = None
    pid_started_at: float | None = None
    exit_code: int | None = None
    total_steps: int | None = None
    current_step: int | None = None
    last_loss: float | None = None
    user_id: str = "local"
    token_hash: str | None = None

    @property
    def is_final(self) -> bool:
        return is_final(self.status)

    @property
    def finished_at(self) -> float | None:
        """Alias of ``ended_at`` (the job list's name for it)."""
        return self.ended_at

    @property
    def final_loss(self) -> float | None:
        """The last training loss reported (the job list shows it as the final loss)."""
        return self.last_loss

    def config(self) -> dict[str, Any]:
        data = json.loads(self.config_json) if self.config_json else {}
        return data if isinstance(data, dict) else {}


JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Job))
