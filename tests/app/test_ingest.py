"""The one ingest path: validation, merge, status from alerts, one notification per batch."""

from __future__ import annotations

import logging

import pytest

from app.core.ingest import IngestEvent, Ingestor, InvalidPayload
from app.core.jobs import JobNotFound
from app.core.store import Store


def test_one_event_per_batch_with_the_validated_points(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    ingestor = Ingestor(store)
    events: list[IngestEvent] = []
    ingestor.subscribe(events.append)
    result = ingestor.ingest_metrics(
        job.id, [{"step": s, "train_loss": 1.0 / s, "extra_thing": s} for s in range(1, 51)]
    )
    assert result.stored == 50
    assert len(events) == 1 and events[0].kind == "metrics"
    assert events[0].points[0] == {"step": 1, "train_loss": 1.0, "extra_thing": 1}
    assert len(store.metrics(job.id)) == 50


def test_a_bad_point_names_its_field_and_nothing_is_stored(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    with pytest.raises(InvalidPayload) as err:
        Ingestor(store).ingest_metrics(job.id, [{"step": 1}, {"step": -4}])
    assert err.value.problems[0].startswith("metrics.1.step: ")
    assert store.metrics(job.id) == []


def test_status_follows_alerts_and_final_is_final(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    ingestor = Ingestor(store)
    changed: list[str] = []
    alerts: list[dict] = []
    ingestor.subscribe_callbacks(
        on_alert=lambda j, a: alerts.append(a), on_job_changed=changed.append
    )
    ingestor.ingest_alert({"type": "job_started", "job_id": job.id, "total_steps": 30})
    assert store.require_job(job.id).status == "running"
    assert store.require_job(job.id).total_steps == 30
    result = ingestor.ingest_alert(
        {"type": "job_failed", "job_id": job.id, "error_message": "CUDA out of memory"}
    )
    assert result.job is not None and result.job.status == "failed"
    assert result.job.error == "CUDA out of memory"
    ingestor.ingest_alert({"type": "job_completed", "job_id": job.id})  # too late
    assert store.require_job(job.id).status == "failed"
    # the very same alert again (a resend) is neither stored nor announced twice
    again = ingestor.ingest_alert({"type": "job_completed", "job_id": job.id})
    assert again.stored == 0 and again.merged == 1
    assert [a["type"] for a in alerts] == ["job_started", "job_failed", "job_completed"]
    assert changed == [job.id] * 3


def test_alert_for_an_unknown_job(store: Store) -> None:
    with pytest.raises(JobNotFound):
        Ingestor(store).ingest_alert({"type": "job_started", "job_id": "ghost"})


def test_a_failing_subscriber_does_not_stop_ingest(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    ingestor = Ingestor(store)
    seen: list[str] = []

    def broken(event: IngestEvent) -> None:
        raise RuntimeError("widget gone")

    ingestor.subscribe(broken)
    unsubscribe = ingestor.subscribe(lambda e: seen.append(e.kind))
    with caplog.at_level(logging.ERROR):
        ingestor.ingest_metrics(job.id, [{"step": 1}])
    assert seen == ["metrics"] and "subscriber failed" in caplog.text
    unsubscribe()
    ingestor.ingest_metrics(job.id, [{"step": 2}])
    assert seen == ["metrics"] and store.metric_count(job.id) == 2
