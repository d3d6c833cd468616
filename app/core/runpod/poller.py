"""The pull path: a pod's event-log lines into the one ingest function, each line once.

The agent serves the run's ``events.jsonl`` from a sequence number (``GET /events?after=N``).
``EventFeed.feed`` hands the new lines to ``Ingestor`` in their order (metrics batched between
alerts) and then stores the last sequence number in the job's ``cloud_runs`` row, so a poll that
is repeated after a lost answer, or a restarted app, continues where ingest stood: nothing is fed
twice and nothing is skipped. (Ingest itself merges a step and stores an identical alert once, so
a line fed twice would change nothing either; the seq keeps the work and the notifications
down.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.event_log import event_lines
from app.core.ingest import Ingestor, InvalidPayload
from app.core.jobs import STATUS_AFTER_ALERT, is_final
from app.core.store import Store

log = logging.getLogger(__name__)

FINAL_ALERTS = frozenset(t for t, status in STATUS_AFTER_ALERT.items() if is_final(status))


@dataclass
class FeedResult:
    points: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0

    @property
    def final_alert(self) -> dict[str, Any] | None:
        finals = [a for a in self.alerts if a.get("type") in FINAL_ALERTS]
        return finals[-1] if finals else None


class EventFeed:
    """Feeds one job's event-log lines into the ingest path, deduplicated by ``seq``."""

    def __init__(self, store: Store, ingestor: Ingestor, job_id: str, last_seq: int = 0) -> None:
        self.store = store
        self.ingestor = ingestor
        self.job_id = job_id
        self.last_seq = last_seq

    def feed(self, lines: Iterable[Mapping[str, Any]]) -> FeedResult:
        result = FeedResult(last_seq=self.last_seq)
        batch: list[dict[str, Any]] = []
        seq = self.last_seq
        for line in sorted(lines, key=_seq):
            line_seq = _seq(line)
            if line_seq <= seq:
                continue  # fed before (a repeated page, or a reattach)
            seq = line_seq
            # the pod's output folder holds this job's run only; a line naming another job
            # (an older run resumed into the same folder) is not ours
            owner = line.get("job_id")
            data = line.get("data")
            if (owner is not None and owner != self.job_id) or not isinstance(data, dict):
                continue
            if line.get("kind") == "metric" and "step" in data:
                batch.append(data)
            elif line.get("kind") == "alert":
                result.points += self._flush(batch)
                batch = []
                alert = {**data, "job_id": self.job_id}
                if self._ingest_alert(alert):
                    result.alerts.append(alert)
        result.points += self._flush(batch)
        if seq != self.last_seq:
            self.last_seq = seq
            self.store.save_cloud_run(self.job_id, last_seq=seq)
        result.last_seq = seq
        return result

    def _flush(self, batch: list[dict[str, Any]]) -> int:
        if not batch:
            return 0
        try:
            self.ingestor.ingest_metrics(self.job_id, batch)
        except InvalidPayload as err:
            # one bad point must not block the rest of the run's figures: keep the good ones
            log.warning("job %s: metric points refused: %s", self.job_id, err)
            good = 0
            for point in batch:
                try:
                    self.ingestor.ingest_metrics(self.job_id, [point])
                    good += 1
                except InvalidPayload:
                    pass
            return good
        return len(batch)

    def _ingest_alert(self, alert: dict[str, Any]) -> bool:
        try:
            self.ingestor.ingest_alert(alert)
        except InvalidPayload as err:
            log.warning("job %s: alert refused: %s", self.job_id, err)
            return False
        return True


def unread_metric_lines(path: Path, after: int) -> list[dict[str, Any]]:
    """The metric lines of a downloaded event log with ``seq > after``: what the polling never
    reached when the pod was stopped before its last lines were read (torn lines skipped)."""
    try:
        return [
            line
            for line in event_lines(path)
            if line.get("kind") == "metric" and _seq(line) > after
        ]
    except OSError:
        return []


def _seq(line: Mapping[str, Any]) -> int:
    value = line.get("seq")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
