"""What every launcher does (DESIGN.md §5): start, cancel, status, reattach.

``LocalLauncher`` (a subprocess on this machine) implements it; the RunPod launcher will too.
Also here: the contract environment a trainer is started with (DESIGN.md §3), built in one place
so that a local process and a pod get the same variables.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from app.core.jobs import Job
from app.core.store import Store
from trainer.config import RunConfig
from trainer.contract import CONTRACT_ENV_VARIABLES

if TYPE_CHECKING:
    from app.core.ingest import Ingestor

OutputCallback = Callable[[str, str], None]  # job_id, one line the trainer wrote
ExitCallback = Callable[[str, "int | None"], None]  # job_id, exit code (None when unknown)
AliveCheck = Callable[[Job], bool]

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
    cfg: RunConfig | None = None,
    hf_token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The contract's variables for one job (DESIGN.md §3): the one place a local process (GUI
    or CLI) and a pod get them from. Optional ones only when they have a value:

    - ``HF_TOKEN``: ``hf_token`` (the keyring's), else the user's own ``HF_TOKEN`` from
      ``environ`` (default: this process's environment);
    - ``DATASET_URL``: ``dataset.path`` when it is an http(s) URL (the trainer reads the rows
      from there instead of ``dataset.path``);
    - ``HF_REPO_NAME``: ``output.hub_repo`` when ``output.push_to_hub`` is on.
    """
    environ = os.environ if environ is None else environ
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
    optional = {
        "HF_TOKEN": hf_token or environ.get("HF_TOKEN", "").strip() or None,
        "DATASET_URL": dataset_url(cfg) if cfg is not None else None,
        "HF_REPO_NAME": cfg.output.hub_repo if cfg is not None and cfg.output.push_to_hub else None,
    }
    env.update({k: v for k, v in optional.items() if v})
    return env


def dataset_url(cfg: RunConfig) -> str | None:
    """``dataset.path`` when it is an http(s) URL (the contract's DATASET_URL), else None."""
    path = cfg.dataset.path.strip()
    return path if path.lower().startswith(("http://", "https://")) else None


def work_dir_of(job: Job, cfg: RunConfig, fallback: Path) -> Path:
    """The folder a job's trainer ran in, from what the job recorded: its output folder.

    A resume must run where the first start ran, whoever resumes it (the GUI runs trainers in
    the data folder, `tunedeck run` in the current folder): a relative ``output.output_dir`` and
    relative dataset paths resolve there. The recorded output folder is that folder joined with
    the config's relative output folder, so the prefix is the working folder. With an absolute
    output folder (or none recorded) ``fallback`` is used: the output folder, and with it the
    checkpoints, is then the same from anywhere.
    """
    relative = cfg.resolved_output_dir(None)
    if relative.is_absolute() or not job.output_dir:
        return fallback
    recorded = Path(job.output_dir)
    tail = len(relative.parts)
    if tail < len(recorded.parts) and recorded.parts[-tail:] == relative.parts:
        return Path(*recorded.parts[:-tail])
    return fallback


def output_dir_conflict(
    store: Store, job_id: str, output_dir: Path, alive: AliveCheck
) -> Job | None:
    """Another local job, not final and still alive, that writes to ``output_dir``; None if none.

    Two trainers in one folder would mix their event logs and overwrite each other's checkpoints.
    ``alive(job)`` says whether that job's trainer may still be running.
    """
    wanted = _normalised(output_dir)
    for other in store.list_jobs():
        if other.id == job_id or other.is_final or other.target != "local":
            continue
        if other.output_dir and _normalised(Path(other.output_dir)) == wanted and alive(other):
            return other
    return None


def _normalised(path: Path) -> str:
    return os.path.normcase(os.path.abspath(os.path.expanduser(str(path))))


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


async def start_job(
    store: Store, ingestor: Ingestor | None, launcher: Launcher, job: Job, cfg: RunConfig
) -> threading.Thread:
    """Start a job made by ``create_job_for``, the one way the GUI and the CLI start runs: a job
    that cannot start is failed with the reason, never left queued, and the LaunchError raised
    again for the caller to show; a job that starts gets the planner's estimate stored beside it
    (on a thread, returned: a command-line run joins it before closing the store; the job view
    sets the estimate against the peak the run reports)."""
    try:
        await launcher.start(job, cfg)
    except LaunchError as err:
        failed = store.set_status(job.id, "failed", f"{err} {err.hint}".strip())
        if ingestor is not None:
            ingestor.job_changed(failed)
        raise
    from app.core.plan_records import record_in_background  # the planner, on first use

    return record_in_background(store, job.id, cfg, job.target)


def resume_config(cfg: RunConfig) -> RunConfig:
    """The same run, continuing from its newest checkpoint."""
    checkpoint = cfg.checkpoint.model_copy(update={"resume_from_checkpoint": "latest"})
    return cfg.model_copy(update={"checkpoint": checkpoint})


def stored_resume_config(job: Job) -> RunConfig:
    """``resume_config`` of the config a job was launched with (every launcher's resume), or a
    LaunchError when that config no longer validates."""
    from trainer.config import ConfigError, parse_config

    try:
        return resume_config(parse_config(job.config()))
    except ConfigError as err:
        raise LaunchError(
            f"job {job.id}'s stored config no longer validates: {err}",
            "Start a new run from an edited copy of the config.",
        ) from err


SECRET_VARIABLES = frozenset({"JOB_TOKEN", "INTERNAL_API_KEY", "HF_TOKEN"})


def secret_free_env_view(env: Mapping[str, str]) -> dict[str, str]:
    """The environment as it may be logged: secrets replaced, and a dataset URL without its
    query (a presigned URL carries its signature there)."""
    view = {k: ("***" if k in SECRET_VARIABLES else v) for k, v in env.items()}
    if "?" in view.get("DATASET_URL", ""):
        view["DATASET_URL"] = view["DATASET_URL"].split("?", 1)[0] + "?***"
    return view
