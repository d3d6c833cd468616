"""Reading a trainer's ``events.jsonl`` from the app: after a local run (what the receiver
missed) and after a cloud run's download (what the polling missed). The trainer writes it
(trainer.reporting.event_log, which the app does not import); one JSON object a line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def event_lines(path: Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The lines of an event log from byte ``offset``, parsed; a line cut by a crash, or one
    that is not a JSON object, is skipped. OSError when the file cannot be read."""
    with path.open("rb") as f:
        f.seek(offset)
        for raw in f:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(event, dict):
                yield event


def events_of_job(
    path: Path, job_id: str, offset: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metric points and alerts of ``job_id`` in an event log, from byte ``offset``.

    Every line of a current trainer names its job at top level (``job_id``); lines of another
    job are skipped, so a folder that several jobs wrote to is read correctly. A line without
    ``job_id`` comes from an older trainer: it is taken as this job's, because the launcher
    refuses to start a second run into a folder a running job uses, and the caller reads from
    where this run's events began, so such a trainer had the folder (from ``offset`` on) alone.
    """
    points: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for event in event_lines(path, offset):
        data = event.get("data")
        if not isinstance(data, dict):
            continue
        owner = event.get("job_id")
        if owner is not None and owner != job_id:
            continue
        if event.get("kind") == "alert" and data.get("job_id", job_id) == job_id:
            alerts.append(data)
        elif event.get("kind") == "metric" and "step" in data:
            points.append(data)
    return points, alerts
