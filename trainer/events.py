"""The wire format between a trainer and whatever listens to it (DESIGN.md §3).

Light on purpose: the desktop's receiver validates with these same models, so the two ends can
never drift. pydantic and the standard library only.

An event-log line (``events.jsonl`` in the output folder) is one JSON object:
``{"seq": 1, "kind": "metric" | "alert", "job_id": "...", "data": {...}}`` where ``data`` is a
MetricPoint or an Alert as sent over HTTP. ``seq`` starts at 1 and never repeats within one output
folder. ``job_id`` is the trainer's JOB_ID (its execution id when JOB_ID is unset): a reader keeps
only the lines of the job it reads for; a line without ``job_id`` (an older trainer) belongs to
a job only when the reader knows the folder was that job's alone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

METRICS_PATH = "/api/training/local/metrics"
ALERTS_PATH = "/api/alerts/trigger"
EVENT_LOG_NAME = "events.jsonl"

# The six alert types of the contract, then Tunedeck's own health alerts.
AlertType = Literal[
    "job_started",
    "job_completed",
    "job_failed",
    "job_cancelled",
    "gpu_oom",
    "timeout_warning",
    "loss_nan",
    "loss_spike",
    "stalled",
    "budget_warning",
]
ALERT_TYPES: tuple[str, ...] = get_args(AlertType)
FINAL_ALERTS = frozenset({"job_completed", "job_failed", "job_cancelled"})

# The named metric fields of the contract. Anything else a trainer sends is kept as an extra.
METRIC_FIELDS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "eval_loss",
    "learning_rate",
    "grad_norm",
    "samples_per_second",
    "tokens_per_second",
    "gpu_memory_allocated_gb",
    "gpu_memory_reserved_gb",
    "gpu_utilization_percent",
    "perplexity",
)

MAX_POINTS_PER_REQUEST = 5000


class MetricPoint(BaseModel):
    """One metric point. Unknown extra fields are kept (numbers, strings, booleans or null)."""

    model_config = ConfigDict(extra="allow")

    step: int = Field(ge=0, le=2**53)
    epoch: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    samples_per_second: float | None = None
    tokens_per_second: float | None = None
    gpu_memory_allocated_gb: float | None = None
    gpu_memory_reserved_gb: float | None = None
    gpu_utilization_percent: float | None = None
    perplexity: float | None = None
    timestamp: str | None = None

    def values(self) -> dict[str, Any]:
        """Every non-null field except step, extras included."""
        return {k: v for k, v in self.model_dump().items() if k != "step" and v is not None}


class MetricsBatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str = Field(min_length=1, max_length=200)
    metrics: list[MetricPoint] = Field(min_length=1, max_length=MAX_POINTS_PER_REQUEST)


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: AlertType
    job_id: str = Field(min_length=1, max_length=200)
    # null is what a contract trainer sends when USER_ID is unset: it means the local user
    user_id: str | None = Field(default="local", max_length=200)
    model_name: str | None = None
    status: str | None = None
    progress: float | None = None
    current_step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    duration: float | None = Field(default=None, description="milliseconds")
    error_message: str | None = None
    error_type: str | None = None
    message: str | None = None

    @field_validator("user_id")
    @classmethod
    def _null_user_is_local(cls, value: str | None) -> str:
        return "local" if value is None else value

    @field_validator("duration")
    @classmethod
    def _whole_duration_as_int(cls, value: float | None) -> float | None:
        # the contract sends whole milliseconds; a fractional duration is taken as it is
        return int(value) if value is not None and value.is_integer() else value


def utc_now_iso() -> str:
    """ISO-8601 UTC with a trailing Z, as the contract's timestamps are written."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# JSON has no NaN or infinity. These are the one place that says what becomes of them: a
# sender or a store turns them into null (json_safe), a receiver refuses them by name
# (non_finite_paths).


def finite_or_none(value: Any) -> Any:
    """A non-finite float (NaN, +/-infinity) becomes None; anything else is returned as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth of dicts, lists and tuples, as None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return finite_or_none(value)


def non_finite_paths(value: Any, prefix: str = "", limit: int = 10) -> list[str]:
    """Dotted paths (``metrics.0.x.a``) of the non-finite floats inside ``value``, at most
    ``limit`` of them; ``prefix`` alone (or "(body)") when ``value`` itself is one. Walks with its
    own stack, so any depth is safe."""
    if not _holds_non_finite(value):  # the common case: one cheap pass, no paths built
        return []
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack and len(found) < limit:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                found.append(path or "(body)")
        elif isinstance(item, dict):
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in item.items()]
            stack.extend(reversed(children))  # popped in document order
        elif isinstance(item, list | tuple):
            children = [(f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item)]
            stack.extend(reversed(children))
    return found


def _holds_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def clean_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The payload as strict JSON allows (non-finite floats as None, at any depth)."""
    return {k: json_safe(v) for k, v in data.items()}
