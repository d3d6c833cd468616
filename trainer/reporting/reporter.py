"""Where a run's metric points and alerts go: the event log first, then the receiver.

Configured from the contract's environment (DESIGN.md §3): ``JOB_ID, JOB_TOKEN, USER_ID,
MODEL_NAME, METRICS_API_URL, ALERT_API_URL, INTERNAL_API_KEY``.

- No ``METRICS_API_URL``: local run, events go to ``events.jsonl`` only.
- ``ALERT_API_URL`` unset: alerts go to the metrics receiver's origin + ``/api/alerts/trigger``.
- A URL that is a bare origin gets the contract path appended; a URL with a path is used as is.
- In a multi-process run only global rank 0 reports; every other rank writes and sends nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.events import (
    ALERTS_PATH,
    EVENT_LOG_NAME,
    METRICS_PATH,
    Alert,
    MetricPoint,
    clean_payload,
    utc_now_iso,
)
from trainer.reporting.event_log import EventLog, iter_events
from trainer.reporting.http_target import HttpTarget, endpoint_url, origin_of
from trainer.reporting.sender import Backoff, Item, Lane

log = logging.getLogger("trainer.reporting")

REQUEST_TIMEOUT_S = 10.0
METRICS_LINGER_S = 0.25  # a metrics batch waits this long to fill before it is sent


def global_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's rank in a torchrun/accelerate launch (0 when not launched that way)."""
    try:
        return int(environ.get("RANK", "0"))
    except ValueError:
        return 0


def alert_headers(api_key: str, token: str) -> dict[str, str]:
    """Credentials for the alerts endpoint: the install's key and the job's own token, each
    when known. Either is enough for the receiver, so a run reattached after the app lost a
    session-only key still gets its alerts through on its token."""
    headers = {}
    if api_key:
        headers["X-API-Key"] = api_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _without_nulls(data: dict[str, Any]) -> dict[str, Any]:
    # A NaN or infinite figure travels as nothing at all: JSON has no NaN, and a null would only
    # say "no value" at more cost.
    return {k: v for k, v in data.items() if v is not None}


class Reporter:
    """Writes every event to the log, then hands it to the sender lanes (if any)."""

    def __init__(
        self,
        *,
        job_id: str,
        user_id: str = "local",
        model_name: str | None = None,
        event_log: EventLog | None,
        metrics_lane: Lane | None = None,
        alerts_lane: Lane | None = None,
    ) -> None:
        self.job_id = job_id
        self.user_id = user_id
        self.model_name = model_name
        self.event_log = event_log
        self.metrics_lane = metrics_lane
        self.alerts_lane = alerts_lane

    @property
    def active(self) -> bool:
        """False on ranks other than 0: nothing is written or sent."""
        return self.event_log is not None

    def metric(self, point: dict[str, Any]) -> None:
        if self.event_log is None:
            return
        point.setdefault("timestamp", utc_now_iso())
        MetricPoint.model_validate(point)  # a bug here must show in tests, not at the receiver
        data = _without_nulls(clean_payload(point))
        seq = self._write("metric", data)
        if seq is not None and self.metrics_lane is not None:
            self.metrics_lane.submit(seq, data)

    def alert(self, type_: str, **fields: Any) -> None:
        if self.event_log is None:
            return
        alert = Alert.model_validate(
            {
                "type": type_,
                "job_id": self.job_id,
                "user_id": self.user_id,
                "model_name": self.model_name,
                "timestamp": utc_now_iso(),
                **fields,
            }
        )
        data = _without_nulls(clean_payload(alert.model_dump()))
        try:
            seq = self._write("alert", data)
        except OSError as err:  # a full disk: the alert that says so must still go out
            log.error("could not write the %s alert to %s (%s)", type_, self.event_log.path, err)
            seq = self.event_log.seq
        if seq is not None and self.alerts_lane is not None:
            self.alerts_lane.submit(seq, data)

    def _write(self, kind: str, data: dict[str, Any]) -> int | None:
        """Append to the event log; an event that is not strict JSON even after cleaning (an
        object json does not know) is left out with a log line instead of stopping training."""
        assert self.event_log is not None
        try:
            return self.event_log.append(kind, data)
        except (TypeError, ValueError, RecursionError) as err:
            if isinstance(err, ValueError) and self.event_log.closed:
                raise
            log.error(
                "a %s event (step %s) cannot be written as JSON (%s); it is left out",
                kind,
                data.get("step", data.get("current_step")),
                err,
            )
            return None

    def lanes(self) -> list[Lane]:
        return [lane for lane in (self.metrics_lane, self.alerts_lane) if lane is not None]

    def flush(self, timeout: float) -> bool:
        return all(lane.flush(timeout) for lane in self.lanes())

    def close(self, timeout: float) -> None:
        """Deliver what can be delivered within ``timeout`` (lanes close in parallel)."""
        import threading

        closers = [
            threading.Thread(target=lane.close, args=(timeout,), daemon=True)
            for lane in self.lanes()
        ]
        for t in closers:
            t.start()
        for t in closers:
            t.join(timeout + 2.0)
        if self.event_log is not None:
            self.event_log.close()

    def pending(self) -> int:
        return sum(lane.pending() for lane in self.lanes())

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        *,
        execution_id: str,
        output_dir: Path,
        default_model_name: str | None = None,
        environ: Mapping[str, str] = os.environ,
        backoff: Backoff | None = None,
        max_queue: int = 10_000,
        max_batch: int = 200,
    ) -> Reporter:
        job_id = environ.get("JOB_ID") or execution_id
        user_id = environ.get("USER_ID") or "local"
        model_name = environ.get("MODEL_NAME") or default_model_name
        if global_rank(environ) != 0:
            return cls(job_id=job_id, user_id=user_id, model_name=model_name, event_log=None)
        event_log = EventLog(Path(output_dir) / EVENT_LOG_NAME, job_id)
        metrics_url = environ.get("METRICS_API_URL")
        if not metrics_url:
            log.info(
                "METRICS_API_URL is not set: metrics and alerts are written to %s only",
                event_log.path,
            )
            return cls(job_id=job_id, user_id=user_id, model_name=model_name, event_log=event_log)
        alerts_url = environ.get("ALERT_API_URL") or origin_of(metrics_url)
        metrics_url = endpoint_url(metrics_url, METRICS_PATH)
        alerts_url = endpoint_url(alerts_url, ALERTS_PATH)
        token = environ.get("JOB_TOKEN", "")
        api_key = environ.get("INTERNAL_API_KEY", "")
        try:
            metrics_target = HttpTarget(
                metrics_url, {"Authorization": f"Bearer {token}"}, REQUEST_TIMEOUT_S
            )
            alerts_target = HttpTarget(alerts_url, alert_headers(api_key, token), REQUEST_TIMEOUT_S)
        except ValueError as err:
            # a bad address must not cost the run: report locally, say so once
            log.error(
                "METRICS_API_URL/ALERT_API_URL unusable (%s); training goes on and events are "
                "written to %s only",
                err,
                event_log.path,
            )
            return cls(job_id=job_id, user_id=user_id, model_name=model_name, event_log=event_log)

        def recover(kind: str) -> Any:
            def read_back(seqs: set[int]) -> list[Item]:
                return [
                    (e["seq"], e["data"])
                    for e in iter_events(event_log.path, after=min(seqs) - 1, job_id=job_id)
                    if e["seq"] in seqs and e.get("kind") == kind
                ]

            return read_back

        metrics_lane = Lane(
            "metrics",
            metrics_target,
            lambda points: {"job_id": job_id, "metrics": points},
            max_batch=max_batch,
            max_queue=max_queue,
            backoff=backoff,
            recover=recover("metric"),
            linger=METRICS_LINGER_S,
            job_id=job_id,
            auth_hint="Check JOB_TOKEN (the job's token from the app)."
            if token
            else "JOB_TOKEN is not set in the trainer's environment.",
        )
        alerts_lane = Lane(
            "alerts",
            alerts_target,
            lambda alerts: alerts[0],
            max_batch=1,
            max_queue=max_queue,
            backoff=backoff,
            recover=recover("alert"),
            job_id=job_id,
            auth_hint="Check INTERNAL_API_KEY (the receiver's API key) and JOB_TOKEN."
            if api_key or token
            else "Neither INTERNAL_API_KEY nor JOB_TOKEN is set in the trainer's environment.",
        )
        return cls(
            job_id=job_id,
            user_id=user_id,
            model_name=model_name,
            event_log=event_log,
            metrics_lane=metrics_lane,
            alerts_lane=alerts_lane,
        )
