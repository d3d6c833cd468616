"""A job's stored estimate beside its measured peak, and the retry config (real SQLite)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from app.core.plan_gpus import table_offers
from app.core.plan_records import (
    measured_peak,
    memory_line,
    plan_record,
    record_in_background,
    retry_config,
)
from app.core.store import SCHEMA_VERSION, Store
from trainer.config import parse_config


def _job(store: Store, config: dict[str, object]) -> str:
    return store.create_job(
        name="j", method="sft", model="builtin:tiny-llama", config_json=json.dumps(config)
    ).id


def test_the_estimate_is_recorded_at_launch_and_read_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    cfg = parse_config(
        {"model": {"name_or_path": "builtin:tiny-llama"}, "runpod": {"gpu_type": "NVIDIA L4"}}
    )
    job_id = _job(store, cfg.model_dump(mode="json"))
    assert memory_line(store, job_id) is None
    record_in_background(store, job_id, cfg, "runpod").join(30)
    record = plan_record(store, job_id)
    assert record is not None and record.target_gpu == "NVIDIA L4" and record.fits is True
    assert record.planned_peak_gb == sum(v for k, v in record.parts.items() if k != "trainable")
    assert memory_line(store, job_id) == (
        f"Peak GPU memory: estimated {record.planned_peak_gb:.2f} GB for NVIDIA L4 · "
        "measured: no GPU figures yet"
    )
    store.add_metrics(
        job_id,
        [{"step": 1, "gpu_memory_allocated_gb": 0.5}, {"step": 2, "gpu_memory_allocated_gb": 0.25}],
    )
    assert measured_peak(store, job_id).allocated_gb == 0.5
    store.delete_job(job_id)  # the record goes with its job
    assert plan_record(store, job_id) is None
    store.close()


def test_the_plans_table_is_a_migration(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in db.execute("PRAGMA table_info(job_plans)")}
    assert {"job_id", "planned_peak_gb", "target_gpu", "fits", "parts"} <= columns
    db.close()


def test_a_model_it_cannot_read_leaves_no_record(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    cfg = parse_config({"model": {"name_or_path": "/no/such/model"}})
    job_id = _job(store, {})
    record_in_background(store, job_id, cfg, "local").join(30)
    assert plan_record(store, job_id) is None
    store.close()


def test_retry_config_names_the_change_or_says_none_is_left() -> None:
    found = retry_config({"training": {"per_device_train_batch_size": 1}})
    assert found is not None
    data, change = found
    assert data["training"]["gradient_checkpointing"] is True
    assert change.startswith("gradient checkpointing on")
    spent = {
        "adapter": {"kind": "qlora"},
        "training": {
            "per_device_train_batch_size": 1,
            "gradient_checkpointing": True,
            "max_length": 300,
        },
    }
    assert retry_config(spent) is None
    assert retry_config({"training": {"learning_rate": 7}}) is None  # no longer validates


def test_the_shipped_table_becomes_offers_with_the_clouds_price() -> None:
    secure = {o.name: o for o in table_offers("secure").offers}
    community = {o.name: o for o in table_offers("community").offers}
    assert secure["NVIDIA GeForce RTX 4090"].price_per_hour == 0.69
    assert community["NVIDIA GeForce RTX 4090"].price_per_hour == 0.34
    assert community["NVIDIA L4"].price_per_hour is None  # not offered there
