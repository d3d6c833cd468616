"""The trainer's side of the contract that needs no pydantic (DESIGN.md §3): the desktop reads
these names before its first paint, when the models of ``trainer.events`` are not loaded yet."""

from __future__ import annotations

# The environment a trainer is started with. A launcher sets these and must never let a value
# inherited from its own environment through.
CONTRACT_ENV_VARIABLES: tuple[str, ...] = (
    "JOB_ID",
    "JOB_TOKEN",
    "USER_ID",
    "MODEL_NAME",
    "METRICS_API_URL",
    "ALERT_API_URL",
    "INTERNAL_API_KEY",
    "DATASET_URL",
    "HF_TOKEN",
    "HF_REPO_NAME",
)
