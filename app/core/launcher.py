"""What every launcher does (DESIGN.md §5): start, cancel, status, reattach.

``LocalLauncher`` (a subprocess on this machine) implements it; the RunPod launcher will too.
Also here: the contract environment a trainer is started with (DESIGN.md §3), built in one place
so that a local process and a pod get the same variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from app.core.jobs import Job
from app.core.store import Store
from trainer.config import RunConfig
from trainer.events import CONTRACT_ENV_VARIABLES

OutputCallback = Callable[[str, str], None]  # job_id, one line the trainer wrote
ExitCallback = Callable[[str, "int | None"], None]  # job_id, exit code (None when unknown)

# Set by the launcher; a value inherited from the parent's environment must never leak through.
CONTRACT_VARIABLES = CONTRACT_ENV_VARIABLES


class LaunchError(RuntimeError):
    """A launch that could not happen, with what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class ReceiverAddress:
    """Where a trainer reports to: the receiver's base URL and the install's API key."""

    url: str
    api_key: str

    @property
    def metrics_url(self) -> str:
        from trainer.events import METRICS_PATH

        return self.url.rstrip("/") + METRICS_PATH

    @property
    def alerts_url(self) -> str:
        from trainer.events import ALERTS_PATH

        return self.url.rstrip("/") + ALERTS_PATH


@dataclass(frozen=True)
class LaunchStatus:
    job_id: str
    running: bool
    pid: int | None = None
    exit_code: int | None = None


def contract_env(
    job: Job,
    *,
    token: str,
    receiver: ReceiverAddress | None,
    hf_token: str | None = None,
    dataset_url: str | None = None,
    hf_repo_name: str | None = None,
) -> dict[str, str]:
    """The contract's variables for one job; optional ones only when they have a value."""
    env = {
        "JOB_ID": job.id,
        "JOB_TOKEN": token,
        "USER_ID": job.user_id,
        "MODEL_NAME": job.model,
    }
    if receiver is not None:
        env["METRICS_API_URL"] = receiver.metrics_url
        env["ALERT_API_URL"] = receiver.alerts_url
        env["INTERNAL_API_KEY"] = receiver.api_key
    optional = {"HF_TOKEN": hf_token, "DATASET_URL": dataset_url, "HF_REPO_NAME": hf_repo_name}
    env.update({k: v for k, v in optional.items() if v})
    return env


class Launcher(Protocol):
    """The interface the GUI and the CLI drive; one instance per target."""

    async def start(self, job: Job, cfg: RunConfig) -> None:
        """Start the trainer for a queued job (its row already in the store)."""

    async def cancel(self, job_id: str, grace_s: float | None = None) -> None:
        """Ask the trainer to stop cleanly (it checkpoints); force it after ``grace_s``."""

    def status(self, job_id: str) -> LaunchStatus:
        """What the launcher knows about the job's process right now."""

    async def reattach(self, job: Job) -> bool:
        """After a restart of the app: follow a job still running, or record why it is not."""

    async def wait(self, job_id: str) -> int | None:
        """Until the job's process has ended; its exit code (None when unknown)."""


def create_job_for(store: Store, cfg: RunConfig, *, target: str = "local") -> Job:
    """A queued job for a validated config (the config holds no secrets)."""
    return store.create_job(
        name=cfg.name,
        method=cfg.method,
        model=cfg.model.name_or_path,
        config_json=cfg.to_json(),
        target=target,
        total_steps=cfg.training.max_steps or None,
    )


def resume_config(cfg: RunConfig) -> RunConfig:
    """The same run, continuing from its newest checkpoint."""
    checkpoint = cfg.checkpoint.model_copy(update={"resume_from_checkpoint": "latest"})
    return cfg.model_copy(update={"checkpoint": checkpoint})


def secret_free_env_view(env: Mapping[str, str]) -> dict[str, str]:
    """The environment as it may be logged: secrets replaced."""
    hidden = {"JOB_TOKEN", "INTERNAL_API_KEY", "HF_TOKEN"}
    return {k: ("***" if k in hidden else v) for k, v in env.items()}
