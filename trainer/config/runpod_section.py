"""The ``runpod`` section: where and how a run trains on a RunPod cloud GPU, and what keeps the
pod from billing on. Read only when the run's target is RunPod; the trainer itself ignores it."""

from __future__ import annotations

from typing import Literal

from trainer.config.fields import Section, option

# RunPod's PyTorch image (CUDA 12.8.1, torch 2.8), pinned: the agent installs the trainer's own
# pinned dependencies on top, skipping those the image already has at the right version.
DEFAULT_RUNPOD_IMAGE = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404"
DEFAULT_GPU_TYPE = "NVIDIA GeForce RTX 4090"
# One poll a second keeps the delay from a metric's creation to the chart under 3 s (p99).
DEFAULT_POLL_INTERVAL_S = 1.0


class RunPodSection(Section):
    gpu_type: str = option(
        DEFAULT_GPU_TYPE,
        title="GPU type",
        description="RunPod GPU type id (as in RunPod's GPU catalog, e.g. 'NVIDIA GeForce RTX "
        "4090', 'NVIDIA A40', 'NVIDIA H100 80GB HBM3').",
        basic=True,
        widget="gpu",
        min_length=1,
        max_length=120,
    )
    gpu_count: int = option(
        1,
        title="GPUs",
        description="GPUs on the pod. More than one trains under accelerate launch (one process "
        "per GPU); the price is per GPU.",
        basic=True,
        ge=1,
        le=8,
    )
    cloud: Literal["secure", "community"] = option(
        "secure",
        description="'secure': RunPod's own data centres; 'community': hosts run by others, "
        "usually cheaper.",
        basic=True,
    )
    container_disk_gb: int = option(
        50,
        title="Container disk (GB)",
        description="Disk of the pod for the model, dataset, checkpoints and the result. It is "
        "deleted with the pod.",
        ge=10,
        le=2000,
    )
    volume_id: str | None = option(
        None,
        title="Network volume",
        description="Id of a RunPod network volume to mount at /workspace, where the pod keeps "
        "the run's files and results: they outlive the pod if it is terminated before they "
        "are downloaded. Empty for none (the volume must be in the pod's data centre).",
        pattern=r"^[\w-]+$",
        max_length=64,
    )
    image: str = option(
        DEFAULT_RUNPOD_IMAGE,
        title="Container image",
        description="Docker image of the pod; it needs python3 (3.10+) and PyTorch with CUDA.",
        min_length=1,
        max_length=300,
    )
    budget_usd: float | None = option(
        10.0,
        title="Budget (USD)",
        description="Stop and terminate the pod when it has cost this much (a "
        "budget_warning alert comes at 80%; a resumed run's new pod has a budget of its own); "
        "empty for no budget.",
        basic=True,
        gt=0,
        le=100_000,
    )
    grace_minutes: float = option(
        15.0,
        title="Collection grace (minutes)",
        description="After the run ends, the pod terminates itself if Tunedeck has not "
        "downloaded the results within this time (results not pushed to the Hub or kept on a "
        "network volume are then lost).",
        ge=1,
        le=1440,
    )
    idle_cap_minutes: float = option(
        30.0,
        title="Unattended cap (minutes)",
        description="The pod terminates itself when Tunedeck has not contacted it for this long "
        "while nothing trains (the app closed before the upload finished, say).",
        ge=1,
        le=1440,
    )
    silence_minutes: float = option(
        20.0,
        title="Silence limit (minutes)",
        description="Stop the run and terminate the pod when the trainer has reported nothing "
        "for this long (a hung download or a deadlock).",
        ge=1,
        le=1440,
    )
    poll_interval_s: float = option(
        DEFAULT_POLL_INTERVAL_S,
        title="Poll interval (s)",
        description="How often Tunedeck reads the pod's event log through RunPod's proxy.",
        ge=0.2,
        le=60,
    )
