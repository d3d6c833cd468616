"""The app raises ``stalled`` itself when a running job has sent nothing for too long.

A trainer that hangs (a dead data loader, a wedged GPU, a pod that lost its network) sends
nothing, so nothing on the wire can say so; only the silence can. ``StallDetector`` is pure: the
caller passes, on a timer, the last time each running job was heard from, and gets back the jobs
to raise ``stalled`` for. Each silence is reported once: a job is due again only after something
new has arrived from it and it has then gone quiet again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from trainer.events import Alert


class StallDetector:
    """``due(last_seen)`` → job ids silent for at least ``stall_after_s`` and not yet reported.

    Times are seconds on the same clock as ``clock`` (``time.time`` by default, because
    last-seen times come from stored wall-clock timestamps). ``stall_after_s <= 0`` turns
    detection off.
    """

    def __init__(self, stall_after_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self.stall_after_s = stall_after_s
        self._clock = clock
        # job id -> the last-seen time whose silence was already reported
        self._reported: dict[str, float] = {}

    @classmethod
    def from_minutes(
        cls, minutes: float, *, clock: Callable[[], float] = time.time
    ) -> StallDetector:
        return cls(minutes * 60.0, clock=clock)

    def due(self, last_seen: Mapping[str, float], now: float | None = None) -> list[str]:
        """Running jobs (the keys of ``last_seen``) that have just gone silent for too long."""
        # Jobs no longer running are forgotten, so an id that comes back starts clean.
        for job_id in list(self._reported):
            if job_id not in last_seen:
                del self._reported[job_id]
        if self.stall_after_s <= 0:
            return []
        now = self._clock() if now is None else now
        stalled = []
        for job_id, seen in sorted(last_seen.items(), key=lambda item: item[1]):
            if now - seen < self.stall_after_s:
                continue
            if self._reported.get(job_id) == seen:
                continue  # this silence was already reported
            self._reported[job_id] = seen
            stalled.append(job_id)
        return stalled

    def silent_for(self, job_id: str, last_seen: float, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        return max(0.0, now - last_seen)


def stalled_alert(job_id: str, silent_s: float, *, model_name: str | None = None) -> Alert:
    """The ``stalled`` alert to ingest (so that it lands in the job's alert list like any other)."""
    minutes = max(1, round(silent_s / 60))
    return Alert(
        type="stalled",
        job_id=job_id,
        model_name=model_name,
        status="running",
        message=f"Nothing received for {minutes} minute{'s' if minutes != 1 else ''}.",
    )


def silence_since(last_heard: float | None, started_at: float, following_since: float) -> float:
    """When a running job's current silence began: the later of what was last heard from it,
    its start, and the moment this app instance began following it. After a restart nothing
    has been heard yet, and the time the app was closed is not the trainer's silence."""
    return max(last_heard or 0.0, started_at, following_since)
