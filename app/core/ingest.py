"""The one way metrics and alerts get in (DESIGN.md §2).

The receiver's HTTP handlers (push) and the RunPod event-log reader (pull) both call
``Ingestor``: it validates with the trainer's own wire models (trainer/events.py), stores through
the Store (a step already stored is filled in, never duplicated), moves the job's status as the
alerts say, and tells subscribers once per batch. Subscribers are plain callables: this layer
knows nothing of Qt (app.ui.bridge turns them into signals).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.core.jobs import STATUS_AFTER_ALERT, Job, JobNotFound
from app.core.store import Store
from trainer.events import Alert, MetricPoint, MetricsBatch, finite_or_none, non_finite_paths

log = logging.getLogger(__name__)


class InvalidPayload(ValueError):
    """A body that does not fit the wire format; ``problems`` name the fields."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class IngestEvent:
    """One notification: a stored metrics batch, a stored alert, or a job whose row changed."""

    kind: Literal["metrics", "alert", "job"]
    job_id: str
    points: tuple[dict[str, Any], ...] = ()
    alert: dict[str, Any] | None = None
    job: Job | None = None


@dataclass(frozen=True)
class IngestResult:
    job_id: str
    stored: int  # points for new steps, or 1 for a new alert
    merged: int = 0  # points that filled in a stored step, or 1 for a repeated alert
    job: Job | None = None


Subscriber = Callable[[IngestEvent], None]
# one call dumps a whole validated batch (a loop over points costs twice as much)
_POINT_LIST: TypeAdapter[list[MetricPoint]] = TypeAdapter(list[MetricPoint])


def describe_errors(err: ValidationError, prefix: str = "") -> list[str]:
    """One readable line per problem, naming the field: ``metrics.0.step: ... (got 'x')``."""
    lines = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "") or "(body)"
        given = e.get("input")
        shown = ""
        if isinstance(given, str | int | float | bool) and e["type"] != "missing":
            text = repr(given)
            shown = f" (got {text[:60]}{'...' if len(text) > 60 else ''})"
        lines.append(f"{loc}: {e['msg']}{shown}")
    return lines


def refuse_non_finite(data: Any, prefix: str = "") -> None:
    """InvalidPayload naming every NaN/Infinity in ``data``: JSON has none, and what is stored
    must be JSON that any reader takes (a NaN in an extra once broke SQLite's json_patch)."""
    paths = non_finite_paths(data, prefix)
    if paths:
        raise InvalidPayload([f"{p}: NaN/Infinity is not JSON; send null instead" for p in paths])


def parse_model(model: type[BaseModel], raw: bytes | str | Mapping[str, Any]) -> Any:
    """Validate JSON text or a dict with a wire model; InvalidPayload names what is wrong."""
    try:
        if isinstance(raw, bytes | str):
            return model.model_validate_json(raw)
        return model.model_validate(raw)
    except ValidationError as err:
        raise InvalidPayload(describe_errors(err) or [str(err)]) from None


@dataclass
class Ingestor:
    store: Store
    _subscribers: list[Subscriber] = field(default_factory=list)

    # -- listeners -----------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` after each stored batch or alert; returns an unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def subscribe_callbacks(
        self,
        *,
        on_metrics: Callable[[str, list[dict[str, Any]]], None] | None = None,
        on_alert: Callable[[str, dict[str, Any]], None] | None = None,
        on_job_changed: Callable[[str], None] | None = None,
    ) -> Callable[[], None]:
        """The same events split by kind (the shape app.ui.bridge.Bridge takes)."""

        def dispatch(event: IngestEvent) -> None:
            if event.kind == "metrics" and on_metrics:
                on_metrics(event.job_id, list(event.points))
            elif event.kind == "alert" and on_alert and event.alert is not None:
                on_alert(event.job_id, event.alert)
            elif event.kind == "job" and on_job_changed:
                on_job_changed(event.job_id)

        return self.subscribe(dispatch)

    def notify(self, event: IngestEvent) -> None:
        """Tell every subscriber; a failing subscriber is logged and never stops ingest."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("an ingest subscriber failed on a %s event", event.kind)

    def job_changed(self, job: Job) -> None:
        self.notify(IngestEvent("job", job.id, job=job))

    # -- the ingest path -----------------------------------------------------------------------

    def ingest_batch(self, batch: MetricsBatch | bytes | str | Mapping[str, Any]) -> IngestResult:
        """A whole ``{"job_id", "metrics"}`` body."""
        parsed: MetricsBatch = (
            batch if isinstance(batch, MetricsBatch) else parse_model(MetricsBatch, batch)
        )
        return self.ingest_metrics(parsed.job_id, parsed.metrics)

    def ingest_metrics(
        self, job_id: str, points: Iterable[MetricPoint | Mapping[str, Any]]
    ) -> IngestResult:
        """Validate and store points of one job; one notification for the batch. InvalidPayload
        names a field that does not fit, NaN/Infinity included (then nothing is stored)."""
        given = list(points)
        validated = [p for p in given if isinstance(p, MetricPoint)]
        if len(validated) == len(given):
            rows: list[dict[str, Any]] = _POINT_LIST.dump_python(validated, exclude_none=True)
        else:
            rows = [_point_dict(p, i) for i, p in enumerate(given)]
        if not rows:
            return IngestResult(job_id, 0)
        refuse_non_finite(rows, "metrics")
        result = self.store.add_metrics(job_id, rows)  # JobNotFound for an unknown job
        self.notify(IngestEvent("metrics", job_id, points=tuple(rows)))
        return IngestResult(job_id, result.inserted, result.merged)

    def ingest_alert(self, alert: Alert | bytes | str | Mapping[str, Any]) -> IngestResult:
        """Store an alert, move the job's status as it says, notify. A repeat is stored once."""
        parsed: Alert = alert if isinstance(alert, Alert) else parse_model(Alert, alert)
        data = parsed.model_dump(exclude_none=True)
        refuse_non_finite(data)
        job_id = parsed.job_id
        if self.store.get_job(job_id) is None:
            raise JobNotFound(job_id)
        new = self.store.add_alert(data)
        job = self._apply_alert(parsed) if new else self.store.get_job(job_id)
        if new:
            self.notify(IngestEvent("alert", job_id, alert=data))
            if job is not None:
                self.job_changed(job)
        return IngestResult(job_id, int(new), int(not new), job)

    def _apply_alert(self, alert: Alert) -> Job | None:
        job_id = alert.job_id
        changes: dict[str, Any] = {}
        # figures an alert carries only update the job when they are plausible
        if _plausible_step(alert.total_steps):
            changes["total_steps"] = alert.total_steps
        if _plausible_step(alert.current_step):
            job = self.store.require_job(job_id)
            changes["current_step"] = max(job.current_step or 0, alert.current_step or 0)
        if finite_or_none(alert.loss) is not None:
            changes["last_loss"] = alert.loss
        if changes:
            self.store.update_job(job_id, **changes)
        status = STATUS_AFTER_ALERT.get(alert.type)
        if status is None:
            return self.store.get_job(job_id)
        error = None
        if status == "failed":
            error = alert.error_message or alert.message or alert.error_type or "the run failed"
        return self.store.set_status(job_id, status, error)


def _plausible_step(value: int | None) -> bool:
    return value is not None and 0 <= value <= 2**53


def _point_dict(point: MetricPoint | Mapping[str, Any], index: int) -> dict[str, Any]:
    if not isinstance(point, MetricPoint):
        try:
            point = MetricPoint.model_validate(point)
        except ValidationError as err:
            raise InvalidPayload(describe_errors(err, f"metrics.{index}")) from None
    data = point.model_dump(exclude_none=True)
    return data
