"""The SQLite store: jobs, merge of metric points by step, alerts, cloud resources, versions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.core import paths
from app.core import store as store_module
from app.core.jobs import JobNotFound
from app.core.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError


def test_default_path_follows_the_data_dir_override(tmp_path: Path) -> None:
    with Store() as store:
        assert store.path == tmp_path / "data" / "tunedeck.sqlite3"
        assert store.path == paths.store_path()
        assert store.path.exists()


def test_file_is_wal_and_versioned(store: Store) -> None:
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_reopening_keeps_the_data_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        job = store.create_job(name="a", method="sft", model="m")
    with Store(path) as store:
        assert store.require_job(job.id).name == "a"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer than this Tunedeck knows"):
        Store(path)


def test_jobs_create_list_search_update_delete(store: Store) -> None:
    a = store.create_job(name="alpha", method="sft", model="org/small", config_json='{"a": 1}')
    b = store.create_job(name="beta", method="dpo", model="org/other", target="runpod")
    assert a.status == "queued" and a.target == "local" and a.created_at > 0
    assert [j.id for j in store.list_jobs()] == [b.id, a.id]  # newest first
    assert [j.id for j in store.list_jobs(search="ALPH")] == [a.id]
    assert [j.id for j in store.list_jobs(search="dpo")] == [b.id]
    updated = store.update_job(a.id, output_dir="/out", pid=123, total_steps=30)
    assert (updated.output_dir, updated.pid, updated.total_steps) == ("/out", 123, 30)
    assert store.find_job(a.id[:-3]).id == a.id
    with pytest.raises(ValueError, match="status goes through set_status"):
        store.update_job(a.id, status="completed")
    store.delete_job(a.id)
    assert store.get_job(a.id) is None
    with pytest.raises(JobNotFound):
        store.update_job(a.id, pid=1)


def test_status_never_leaves_a_final_state(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    running = store.set_status(job.id, "running")
    assert running.status == "running" and running.started_at is not None
    done = store.set_status(job.id, "completed")
    assert done.status == "completed" and done.ended_at is not None
    assert store.set_status(job.id, "running").status == "completed"
    assert store.set_status(job.id, "failed", "late").status == "completed"
    assert store.get_job(job.id).error is None
    assert (
        store.set_status(
            store.create_job(name="b", method="sft", model="m").id, "failed", "bad config"
        ).error
        == "bad config"
    )
    reopened = store.reopen_job(job.id)  # resume is the one explicit way back
    assert reopened.status == "queued" and reopened.ended_at is None


def test_metric_points_merge_by_step_and_keep_extras(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    first = store.add_metrics(
        job.id,
        [
            {"step": 1, "train_loss": 2.5, "learning_rate": 1e-4, "my_metric": 7},
            {"step": 2, "train_loss": 2.0},
        ],
    )
    assert (first.inserted, first.merged) == (2, 0)
    again = store.add_metrics(
        job.id, [{"step": 1, "eval_loss": 2.7, "train_loss": None, "note": "eval", "my_metric": 8}]
    )
    assert (again.inserted, again.merged) == (0, 1)
    rows = store.metrics(job.id)
    assert rows == [
        {
            "step": 1,
            "train_loss": 2.5,  # null did not erase it
            "eval_loss": 2.7,  # filled in
            "learning_rate": 1e-4,
            "my_metric": 8,
            "note": "eval",
        },
        {"step": 2, "train_loss": 2.0},
    ]
    assert store.metrics(job.id, after_step=1) == [{"step": 2, "train_loss": 2.0}]
    assert store.metric_count(job.id) == 2
    current = store.require_job(job.id)
    assert (current.current_step, current.last_loss) == (2, 2.0)


def test_non_finite_numbers_are_stored_as_missing(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    store.add_metrics(job.id, [{"step": 3, "train_loss": float("nan"), "grad_norm": 1.0}])
    assert store.metrics(job.id) == [{"step": 3, "grad_norm": 1.0}]


def test_metrics_for_an_unknown_job_are_refused(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.add_metrics("nope", [{"step": 1}])


def test_alerts_are_kept_once(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    alert = {"type": "loss_spike", "job_id": job.id, "loss": 9.0, "current_step": 5}
    assert store.add_alert(alert) is True
    assert store.add_alert(dict(alert)) is False  # a resend after a lost response
    assert store.add_alert({**alert, "current_step": 6}) is True
    stored = store.alerts(job.id)
    assert [a["current_step"] for a in stored] == [5, 6]
    assert stored[0]["type"] == "loss_spike" and stored[0]["received_at"] > 0
    assert len(store.alerts()) == 2


def test_deleting_a_job_removes_its_points_and_alerts(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    store.add_metrics(job.id, [{"step": 1, "train_loss": 1.0}])
    store.add_alert({"type": "job_started", "job_id": job.id})
    store.delete_job(job.id)
    assert store.metrics(job.id) == [] and store.alerts(job.id) == []


def test_cloud_resources_are_recorded_before_and_updated_after(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m", target="runpod")
    pod = store.record_resource(provider="runpod", status="creating", job_id=job.id)
    assert pod.resource_id is None and pod.terminated_at is None
    store.update_resource(pod.id, resource_id="pod-123", status="running", cost_per_hour=0.44)
    assert [r.resource_id for r in store.list_resources(active=True)] == ["pod-123"]
    done = store.update_resource(pod.id, status="terminated", terminated_at=123.0)
    assert done.status == "terminated" and done.cost_per_hour == 0.44
    assert store.list_resources(active=True) == []
    assert [r.id for r in store.list_resources(provider="runpod", job_id=job.id)] == [pod.id]
    with pytest.raises(ValueError, match="cannot set"):
        store.update_resource(pod.id, id=5)


def test_text_and_numbers_sqlite_cannot_bind_do_not_raise(store: Store) -> None:
    # the pull path hands dicts straight from a pod's event log: lone surrogates, huge integers
    job = store.create_job(name="a", method="sft", model="m")
    store.add_metrics(job.id, [{"step": 1, "timestamp": "\udae8", "big": 10**30}])
    assert store.metrics(job.id) == [{"step": 1, "timestamp": "?", "big": 10**30}]
    assert store.get_job("\udc00") is None
    assert store.update_job(job.id, error="bad \udc00", total_steps=10**30).total_steps is None


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_nested_non_finite_extras_are_stored_as_json_and_a_resend_merges(store: Store) -> None:
    """Issue 8, defect 1: a NaN inside an extra was stored as the text NaN, and the same step
    arriving again made SQLite's json_patch fail."""
    job = store.create_job(name="a", method="sft", model="m")
    nan, inf = float("nan"), float("inf")
    store.add_metrics(job.id, [{"step": 1, "x": {"a": nan, "b": [inf, 2]}, "y": -inf}])
    store.add_metrics(job.id, [{"step": 1, "x": {"c": 3}, "note": "again"}])
    assert store.metrics(job.id) == [
        {"step": 1, "x": {"a": None, "b": [None, 2], "c": 3}, "y": None, "note": "again"}
    ]
    raw = sqlite3.connect(store.path)
    for (extras,) in raw.execute("SELECT extras FROM metrics"):
        _strict_json(extras)
    raw.close()


def test_alert_payloads_are_strict_json(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    store.add_alert(
        {"type": "loss_nan", "job_id": job.id, "loss": float("nan"), "d": {"x": [float("inf")]}}
    )
    raw = sqlite3.connect(store.path)
    [(payload,)] = raw.execute("SELECT payload FROM alerts").fetchall()
    raw.close()
    assert _strict_json(payload) == {"type": "loss_nan", "job_id": job.id, "d": {"x": [None]}}


def test_an_old_store_with_nan_text_opens_reads_and_merges(tmp_path: Path) -> None:
    """Rows written by an older Tunedeck may hold NaN text: opening repairs them."""
    path = tmp_path / "old.sqlite3"
    # a file as it was before the repair: only the migrations before it, then rows with NaN
    before = MIGRATIONS.index(store_module._repair_non_json)
    raw = sqlite3.connect(path)
    for migration in MIGRATIONS[:before]:
        if callable(migration):
            migration(raw)
        else:
            raw.executescript(migration)
    raw.execute(f"PRAGMA user_version = {before}")
    job_id = "20261101-000000-0ld0ne"
    raw.execute(
        "INSERT INTO jobs (id, name, method, model, created_at) VALUES (?, 'a', 'sft', 'm', 0)",
        (job_id,),
    )
    raw.execute(
        "INSERT INTO metrics (job_id, step, extras, received_at) VALUES (?, 1, ?, 0)",
        (job_id, '{"x": {"a": NaN}, "y": Infinity}'),
    )
    raw.execute(
        "INSERT INTO alerts (job_id, type, received_at, payload) VALUES (?, 'loss_nan', 0, ?)",
        (job_id, '{"job_id": ' + json.dumps(job_id) + ', "loss": NaN, "type": "loss_nan"}'),
    )
    raw.commit()
    raw.close()
    with Store(path) as store:
        assert store.metrics(job_id) == [{"step": 1, "x": {"a": None}, "y": None}]
        store.add_metrics(job_id, [{"step": 1, "x": {"b": 2}}])  # json_patch works on it
        assert store.metrics(job_id)[0]["x"] == {"a": None, "b": 2}
        assert store.alerts(job_id)[0]["loss"] is None
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    for (text,) in raw.execute("SELECT extras FROM metrics UNION ALL SELECT payload FROM alerts"):
        _strict_json(text)
    raw.close()


def test_a_token_in_use_is_found_by_its_hash_only(store: Store) -> None:
    job = store.create_job(name="a", method="sft", model="m")
    store.update_job(job.id, token_hash="ab" * 32)
    assert store.token_in_use("ab" * 32)
    assert not store.token_in_use("cd" * 32)
    assert not store.token_in_use("")
