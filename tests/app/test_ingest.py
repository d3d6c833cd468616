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


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ({"step": 1, "x": {"a": float("nan")}}, "metrics.0.x.a"),
        ({"step": 1, "train_loss": float("inf")}, "metrics.0.train_loss"),
        ({"step": 1, "deep": [[{"z": -float("inf")}]]}, "metrics.0.deep.0.0.z"),
    ],
)
def test_non_finite_anywhere_in_a_point_is_refused_by_name(
    store: Store, point: dict, field: str
) -> None:
    """Issue 8, defect 1: JSON has no NaN; what cannot be stored as JSON is refused."""
    job = store.create_job(name="a", method="sft", model="m")
    with pytest.raises(InvalidPayload) as err:
        Ingestor(store).ingest_metrics(job.id, [{"step": 0}, point])
    assert err.value.problems[0].startswith(field.replace(".0.", ".1.", 1) + ": NaN/Infinity")
    assert store.metric_count(job.id) == 0


def test_non_finite_in_an_alert_is_refused_by_name(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    with pytest.raises(InvalidPayload) as err:
        Ingestor(store).ingest_alert(
            {"type": "loss_spike", "job_id": job.id, "detail": {"losses": [1.0, float("nan")]}}
        )
    assert err.value.problems == ["detail.losses.1: NaN/Infinity is not JSON; send null instead"]
    assert store.alerts() == []


def test_what_contract_trainers_send_in_alerts_is_accepted(store: Store) -> None:
    """Issue 8, defect 16: a null user_id, a fractional duration, string extras."""
    job = store.create_job(name="a", method="sft", model="m")
    Ingestor(store).ingest_alert(
        {
            "type": "loss_spike",
            "job_id": job.id,
            "user_id": None,
            "duration": 1234.5,
            "loss_trend": "rising",
        }
    )
    Ingestor(store).ingest_alert({"type": "job_completed", "job_id": job.id, "duration": 1500})
    first, done = store.alerts(job.id)
    assert first["user_id"] == "local"
    assert first["duration"] == 1234.5 and first["loss_trend"] == "rising"
    assert done["duration"] == 1500 and type(done["duration"]) is int  # an int stays an int
