"""What goes to a pod: the create request (image, GPU, the agent and its caps), the dataset file
to upload, and whether the Hugging Face token may travel with the run.

The user's RunPod key never goes to the pod (RunPod gives every pod a key of its own). The Hub
token goes only to a run that reads from or pushes to the Hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.core.runpod import bootstrap
from app.core.runpod.models import PodRequest
from app.core.runpod.orphans import pod_name
from trainer.config import RunConfig

AGENT_PORT = 8765


def pod_request(job_id: str, cfg: RunConfig, token: str) -> PodRequest:
    """The create request of a job's pod: it runs the agent, with the run's caps, on one port."""
    rp = cfg.runpod
    args, env = bootstrap.agent_start(
        token,
        port=AGENT_PORT,
        grace_s=rp.grace_minutes * 60.0,
        idle_cap_s=rp.idle_cap_minutes * 60.0,
    )
    return PodRequest(
        name=pod_name(job_id),
        image=rp.image,
        gpu_type_id=rp.gpu_type,
        gpu_count=rp.gpu_count,
        cloud="SECURE" if rp.cloud == "secure" else "COMMUNITY",
        container_disk_gb=rp.container_disk_gb,
        volume_id=rp.volume_id,
        ports=[f"{AGENT_PORT}/http"],
        env=env,
        args=args,
    )


def package_root() -> Path:
    """Where relative dataset paths resolve last (the trainer does the same)."""
    return Path(__file__).resolve().parents[3]


def local_dataset(cfg: RunConfig, base_dir: Path) -> Path | None:
    """The dataset file to upload; None for a URL or a Hub id (the pod reads those itself)."""
    source = cfg.dataset.path
    if "://" in source:
        return None
    for base in (base_dir, Path.cwd(), package_root()):
        candidate = Path(source) if Path(source).is_absolute() else base / source
        if candidate.is_file():
            return candidate
    return None


def dataset_upload_name(path: Path) -> str:
    """``dataset.<ext>`` as the agent takes it (``.jsonl.gz`` keeps both suffixes)."""
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else [path.suffix]
    return "dataset" + "".join(suffixes)


def talks_to_hub(cfg: RunConfig, base_dir: Path) -> bool:
    """Whether the run pulls its model or data from the Hub, or pushes its result there."""
    model, data = cfg.model.name_or_path, cfg.dataset.path
    return (
        cfg.output.push_to_hub
        or not (model.startswith("builtin:") or Path(model).exists())
        or ("://" not in data and local_dataset(cfg, base_dir) is None)
    )


def write_private(path: Path, text: str) -> None:
    """A file only this user may read (the agent token, kept for reattaching)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def inside(folder: Path, path: Path) -> bool:
    """Whether ``path`` stays inside ``folder`` (an artifact path from the pod is not trusted)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
