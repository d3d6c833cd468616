"""Exporting a finished job's model, as the app asks the trainer for it (DESIGN.md §8).

The work (merge, GGUF, Hub push) runs in the trainer's environment as ``python -m trainer
export``; this module turns a job and an ``ExportRequest`` into that command and its working
folder, checks what can be checked without the training stack (the job is finished, its output
folder is there, the destination is free), and starts it through app.core.trainer_subprocess.
The CLI (``tunedeck export-model``) and the export dialog both use it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.jobs import Job, is_final
from app.core.launcher import work_dir_of
from app.core.trainer_subprocess import EventCallback, TrainerProcess
from trainer.config import RunConfig, parse_config

ExportKind = Literal["merged", "gguf", "hub"]
EXPORT_KINDS: tuple[ExportKind, ...] = ("merged", "gguf", "hub")
GGUF_TYPES = ("f16", "q8_0")


class ExportRefused(Exception):
    """An export that cannot start: says what is wrong and what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class ExportRequest:
    kind: ExportKind
    destination: str  # a folder for merged/gguf, owner/name for hub
    gguf_type: str = "f16"
    public: bool = False
    adapter_only: bool = False
    force: bool = False
    checkpoint: int | None = None


def job_config(job: Job) -> RunConfig:
    return parse_config(json.loads(job.config_json))


def run_folder(job: Job) -> Path:
    """The job's output folder (where its adapter or model, events and summary are)."""
    if not is_final(job.status):
        raise ExportRefused(
            f"job {job.id} is {job.status}; only a finished job can be exported",
            "Wait until it completes, or cancel it and export one of its checkpoints.",
        )
    if not job.output_dir:
        raise ExportRefused(f"job {job.id} recorded no output folder; there is nothing to export")
    folder = Path(job.output_dir)
    if not folder.is_dir():
        raise ExportRefused(
            f"job {job.id}: its output folder {folder} does not exist",
            "It may have been moved or deleted; export needs the adapter or model files there.",
        )
    return folder


def destination_in_use(path: Path) -> bool:
    """A folder that exists and holds something: an export never writes there unasked."""
    return path.is_dir() and any(path.iterdir())


def check_destination(request: ExportRequest) -> None:
    if request.kind == "hub":
        return
    path = Path(request.destination).expanduser()
    if path.exists() and not path.is_dir():
        raise ExportRefused(f"{path}: exists and is not a folder", "Choose a folder.")
    if destination_in_use(path) and not request.force:
        raise ExportRefused(
            f"{path}: the folder is not empty; nothing was written",
            "Choose an empty or new folder, or pass --force to replace files of the same name.",
        )


def remove_partials(request: ExportRequest) -> list[Path]:
    """Remove what an export killed before it could clean up left beside its folder (the
    trainer builds in ``DIR.partial-*`` and moves the result into DIR only at the end)."""
    if request.kind == "hub":
        return []
    folder = Path(request.destination).expanduser().resolve()
    found = sorted(folder.parent.glob(f"{folder.name}.partial-*"))
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found


def export_arguments(request: ExportRequest, config_path: Path, run_dir: Path) -> list[str]:
    """The trainer verb's arguments for ``request``."""
    args = ["export", "--config", str(config_path), "--run-dir", str(run_dir)]
    if request.checkpoint is not None:
        args += ["--checkpoint", str(request.checkpoint)]
    if request.kind == "merged":
        args += ["--merged", str(Path(request.destination).expanduser().resolve())]
    elif request.kind == "gguf":
        if request.gguf_type not in GGUF_TYPES:
            raise ExportRefused(f"GGUF type {request.gguf_type!r}: choose f16 or q8_0")
        destination = str(Path(request.destination).expanduser().resolve())
        args += ["--gguf", request.gguf_type, destination]
    else:
        args += ["--hub", request.destination]
        if request.public:
            args.append("--public")
        if request.adapter_only:
            args.append("--adapter-only")
    if request.force:
        args.append("--force")
    return args


def start_export(
    job: Job,
    request: ExportRequest,
    *,
    python: str,
    scratch: Path,
    on_event: EventCallback | None = None,
    hf_token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> TrainerProcess:
    """Start ``python -m trainer export`` for ``job``; ``scratch`` holds the config file it
    reads (the job's stored config). The trainer runs in the job's own working folder, so
    relative dataset and model paths resolve as they did in training."""
    run_dir = run_folder(job)
    check_destination(request)
    cfg = job_config(job)
    scratch.mkdir(parents=True, exist_ok=True)
    config_path = scratch / f"export-{job.id}.json"
    config_path.write_text(job.config_json, encoding="utf-8")
    work_dir = work_dir_of(job, cfg, run_dir)
    extra = {"HF_TOKEN": hf_token} if hf_token else {}
    process = TrainerProcess(
        export_arguments(request, config_path, run_dir),
        python=python,
        cwd=work_dir if work_dir.is_dir() else run_dir,
        env=env,
        extra_env=extra,
        on_event=on_event,
    )
    return process.start()


def human_size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} GB"
