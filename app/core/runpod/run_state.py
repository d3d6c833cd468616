"""One cloud job as the launcher follows it, and how long each of its waits may last."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.runpod.agent_client import AgentClient
from app.core.runpod.cost import PhaseLedger
from app.core.runpod.poller import EventFeed
from app.core.store import CloudRun
from trainer.config import RunConfig

# the trainer's own max_runtime stops it cleanly; the launcher's cap is a backstop past it
RUNTIME_BACKSTOP_S = 10 * 60.0


@dataclass(frozen=True)
class Timeouts:
    """How long each wait may last (tests shorten them)."""

    provision_s: float = 20 * 60.0  # pod RUNNING and its agent answering
    pod_check_s: float = 3.0  # between get_pod calls while provisioning
    final_alert_s: float = 5 * 60.0  # after a cancel: until the trainer has saved and said so
    unreachable_log_s: float = 60.0  # log an unreachable agent at most this often
    verify_s: float = 1.0  # between checks that a terminated pod is gone
    # an upload or download cut by the proxy is tried again (it resumes) this long before the
    # run is given up
    transfer_retry_s: float = 2 * 60.0
    # after a failure: how long to try to bring the artifacts home before the pod is terminated
    collect_on_failure_s: float = 2 * 60.0


@dataclass
class CloudJobRun:
    """What the launcher knows of one cloud job while it follows it."""

    job_id: str
    cfg: RunConfig
    ledger: PhaseLedger
    feed: EventFeed
    token: str
    pod_id: str | None = None
    resource_row: int | None = None
    agent: AgentClient | None = None
    job_token: str | None = None  # only for /start; never stored
    cancel_requested: bool = False
    stop_reason: str | None = None  # why the run is being stopped (user, budget, runtime)
    stop_by: float | None = None  # monotonic deadline for the trainer to confirm the stop
    cancel_sent: bool = False
    final_alert: dict[str, Any] | None = None
    warned_budget: bool = False
    last_heard: float = field(default_factory=time.monotonic)
    training_since: float | None = None
    log_offset: int = 0
    work_dir: Path | None = None  # where relative paths resolve (a resume: where it first ran)
    checkpoint_archive: Path | None = None  # a resume: the checkpoint to upload
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def stop(self, reason: str, within_s: float) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_by = time.monotonic() + within_s


def ledger_of(row: CloudRun) -> PhaseLedger:
    return PhaseLedger.restore(row.phase, row.phase_started_at, row.cost_per_hour, row.phases)
