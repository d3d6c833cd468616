"""A job's planned peak GPU memory, kept beside the peak it really reached, and the config to
retry a job that ran out of memory.

The estimate is made when the job is launched (on a thread: it may read a model's headers from
the Hub) and stored in the ``job_plans`` table (store migration 5). The measured peak is the
largest ``gpu_memory_allocated_gb`` (and ``..._reserved_gb``) among the job's metric points, as
the trainer reports them.

The table is read and written through the Store's own methods (``save_job_plan``,
``job_plan``, ``peak_gpu_memory``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core.store import Store
from trainer.config import ConfigError, RunConfig, parse_config
from trainer.planner import (
    GIB,
    GpuOffer,
    ModelShapeError,
    Plan,
    less_memory_variant,
    make_plan,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanRecord:
    job_id: str
    planned_peak_gb: float
    target_gpu: str | None
    target_memory_gb: float | None
    fits: bool | None
    parts: dict[str, float]  # GiB per part of the estimate


@dataclass(frozen=True)
class MeasuredPeak:
    allocated_gb: float | None
    reserved_gb: float | None


def save_plan(store: Store, job_id: str, plan: Plan) -> PlanRecord:
    target = plan.target
    record = PlanRecord(
        job_id,
        plan.estimate.peak_bytes / GIB,
        target.gpu.name if target else None,
        target.gpu.memory_gb if target else None,
        target.fits if target else None,
        {p.key: p.bytes / GIB for p in plan.estimate.parts},
    )
    store.save_job_plan(
        job_id,
        planned_peak_gb=record.planned_peak_gb,
        target_gpu=record.target_gpu,
        target_memory_gb=record.target_memory_gb,
        fits=record.fits,
        parts=record.parts,
    )
    return record


def plan_record(store: Store, job_id: str) -> PlanRecord | None:
    row = store.job_plan(job_id)
    if row is None:
        return None
    return PlanRecord(
        row["job_id"],
        float(row["planned_peak_gb"]),
        row["target_gpu"],
        row["target_memory_gb"],
        row["fits"],
        row["parts"],
    )


def measured_peak(store: Store, job_id: str) -> MeasuredPeak:
    """The largest GPU memory the trainer reported for the job (None: no GPU figures)."""
    allocated, reserved = store.peak_gpu_memory(job_id)
    return MeasuredPeak(
        None if allocated is None else float(allocated),
        None if reserved is None else float(reserved),
    )


def memory_line(store: Store, job_id: str) -> str | None:
    """ "Peak GPU memory: estimated 4.7 GB · measured 4.5 GB (reserved 5.1 GB)", or None when
    neither is known."""
    record = plan_record(store, job_id)
    peak = measured_peak(store, job_id)
    if record is None and peak.allocated_gb is None:
        return None
    parts = []
    if record is not None:
        where = f" for {record.target_gpu}" if record.target_gpu else ""
        parts.append(f"estimated {record.planned_peak_gb:.2f} GB{where}")
    if peak.allocated_gb is not None:
        reserved = f" (reserved {peak.reserved_gb:.2f} GB)" if peak.reserved_gb is not None else ""
        parts.append(f"measured {peak.allocated_gb:.2f} GB{reserved}")
    elif record is not None:
        parts.append("measured: no GPU figures yet")
    return "Peak GPU memory: " + " · ".join(parts)


def plan_for_launch(config: RunConfig, target: str, gpus: Sequence[GpuOffer] = ()) -> Plan:
    """The estimate of a run as launched: on RunPod for its GPU type, else this computer's GPU."""
    return make_plan(config, gpus, target=config.runpod.gpu_type if target == "runpod" else None)


def record_in_background(
    store: Store, job_id: str, config: RunConfig, target: str
) -> threading.Thread:
    """Estimate and store the job's peak on a daemon thread (a Hub model may take seconds to
    read); a model it cannot read leaves no record and one log line."""
    from app.core.plan_gpus import table_offers

    def work() -> None:
        try:
            plan = plan_for_launch(config, target, table_offers(config.runpod.cloud).offers)
            save_plan(store, job_id, plan)
        except ModelShapeError as err:
            log.info("no memory estimate for job %s: %s", job_id, err)
        except Exception:  # a bug here must not touch the run
            log.exception("memory estimate for job %s failed", job_id)

    thread = threading.Thread(target=work, name=f"plan-{job_id}", daemon=True)
    thread.start()
    return thread


def retry_config(config: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The config of a job that ran out of GPU memory with the first applicable change of the
    planner's list applied (``less_memory_variant``), and that change's name; None when no
    change is left (only a larger GPU helps) or the stored config no longer validates."""
    try:
        cfg = parse_config(config)
    except ConfigError:
        return None
    found = less_memory_variant(cfg)
    if found is None:
        return None
    variant, description = found
    return variant.model_dump(mode="json"), description
