"""The whole plan of a run: memory, which GPUs fit, time and money on each, and what would make
it fit. The desktop and both command lines build it here and print it with ``table.py``."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import RunConfig
from trainer.data.formats import DatasetError
from trainer.planner.dataset_tokens import DatasetTokens, dataset_tokens
from trainer.planner.fit import GpuOffer, Suggestion, fits, suggestions
from trainer.planner.memory import Hardware, MemoryEstimate, estimate_memory
from trainer.planner.model_shapes import HubFetch, ModelShapeError, ModelShapes, read_model_shapes
from trainer.planner.throughput import run_flops, run_seconds, supports_bf16


@dataclass(frozen=True)
class GpuFit:
    gpu: GpuOffer
    fits: bool
    hours: float | None  # None: the GPU's throughput or the dataset's size is unknown
    cost: float | None  # USD for the whole run on gpu.count GPUs

    @property
    def headroom_gb(self) -> float:
        return self.gpu.usable_bytes / 2**30


@dataclass(frozen=True)
class Plan:
    model: str
    shapes_source: str
    num_parameters: int
    estimate: MemoryEstimate
    tokens: DatasetTokens | None
    trained_tokens: float | None  # over all epochs (or max_steps)
    gpus: tuple[GpuFit, ...]
    target: GpuFit | None
    suggestions: tuple[Suggestion, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def target_fits(self) -> bool | None:
        return None if self.target is None else self.target.fits


def local_gpus() -> list[GpuOffer]:
    """This computer's GPUs from ``nvidia-smi`` (none when the driver is absent)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        name, _, mib = line.rpartition(",")
        if name.strip() and mib.strip().isdigit():
            found.append(GpuOffer(name.strip(), int(mib) / 1024, 0.0, local=True))
    return found


def trained_tokens(cfg: RunConfig, tokens: DatasetTokens) -> float:
    """Tokens forwarded over the run: epochs x the rows' tokens, or max_steps x the effective
    batch x the mean row (and a GRPO/rlhf completion adds its length per sampled completion)."""
    per_row = tokens.tokens / max(1, tokens.rows)
    if cfg.method in ("grpo", "rlhf"):
        gen = cfg.grpo if cfg.method == "grpo" else cfg.rlhf
        per_row = gen.num_generations * (per_row + gen.max_completion_length)
    batch = (
        cfg.training.per_device_train_batch_size
        * cfg.training.gradient_accumulation_steps
        * cfg.runtime.num_processes
    )
    if cfg.training.max_steps is not None:
        return cfg.training.max_steps * batch * per_row
    rows = tokens.rows * cfg.training.num_train_epochs
    return math.ceil(rows / batch) * batch * per_row


def generated_tokens(cfg: RunConfig, tokens: DatasetTokens, total: float) -> float:
    if cfg.method not in ("grpo", "rlhf"):
        return 0.0
    gen = cfg.grpo if cfg.method == "grpo" else cfg.rlhf
    per_row = tokens.tokens / max(1, tokens.rows)
    share = gen.max_completion_length / (per_row + gen.max_completion_length)
    return total * share


def make_plan(
    cfg: RunConfig,
    gpus: Sequence[GpuOffer] = (),
    *,
    base_dir: Path | None = None,
    target: str | None = None,
    local: Sequence[GpuOffer] | None = None,
    shapes: ModelShapes | None = None,
    fetch: HubFetch | None = None,
    count_dataset: bool = True,
) -> Plan:
    """Plan ``cfg``: ``gpus`` are the cloud GPU types (name, memory, price) the caller knows;
    ``local`` this computer's (probed with nvidia-smi when None); ``target`` the GPU name the run
    is meant for (a local GPU or a cloud type; None: this computer's first GPU, else
    ``runpod.gpu_type`` when it is among ``gpus``).

    Raises ModelShapeError when the model's shapes cannot be read."""
    shapes = shapes or read_model_shapes(
        cfg.model.name_or_path, revision=cfg.model.revision, base_dir=base_dir, fetch=fetch
    )
    reward_shapes = None
    notes: list[str] = []
    if cfg.method == "rlhf" and cfg.rlhf.reward_model:
        try:
            reward_shapes = read_model_shapes(cfg.rlhf.reward_model, base_dir=base_dir, fetch=fetch)
        except ModelShapeError as err:
            notes.append(f"reward model taken as the size of the base ({err})")
    tokens: DatasetTokens | None = None
    if count_dataset:
        try:
            tokens = dataset_tokens(cfg, base_dir)
        except DatasetError as err:
            notes.append(f"dataset not counted: {'; '.join(err.problems)}")
    if tokens is None and not notes:
        notes.append("dataset not read here (a URL or Hub dataset): time and cost not estimated")

    packed = (cfg.method == "sft" and cfg.sft.packing) or (cfg.method == "cpt" and cfg.cpt.packing)
    seq_len = cfg.training.max_length if tokens is None or packed else tokens.longest

    def estimate_on(c: RunConfig, bf16: bool) -> MemoryEstimate:
        length = min(seq_len, c.training.max_length)
        return estimate_memory(
            c, shapes, Hardware(bf16=bf16), seq_len=length, reward_shapes=reward_shapes
        )

    # one estimate per kind of GPU: with bfloat16, and without (float32 weights, fp16 autocast)
    by_bf16 = {True: estimate_on(cfg, True)}
    local_list = list(local_gpus() if local is None else local)
    all_gpus = [*local_list, *gpus]
    # the target: the one named, else this computer's first GPU, else the config's RunPod type
    wanted = target or (local_list[0].name if local_list else cfg.runpod.gpu_type)
    target_bf16 = supports_bf16(wanted)

    def estimate_for(gpu: GpuOffer) -> MemoryEstimate:
        flag = supports_bf16(gpu.name)
        if flag not in by_bf16:
            by_bf16[flag] = estimate_on(cfg, flag)
        return by_bf16[flag]

    estimate = estimate_on(cfg, target_bf16) if not target_bf16 else by_bf16[True]
    total = trained_tokens(cfg, tokens) if tokens else None
    work = (
        run_flops(cfg, shapes.num_parameters, total, generated_tokens(cfg, tokens, total))
        if total is not None and tokens is not None
        else None
    )
    fitted = []
    for gpu in all_gpus:
        seconds = run_seconds(work, gpu.name, gpu.count) if work is not None else None
        hours = seconds / 3600 if seconds is not None else None
        cost = (
            hours * gpu.price_per_hour * gpu.count
            if hours is not None and gpu.price_per_hour is not None
            else None
        )
        fitted.append(GpuFit(gpu, fits(estimate_for(gpu), gpu), hours, cost))
    chosen = next((f for f in fitted if f.gpu.name == wanted), None)
    if target is not None and chosen is None:
        notes.append(f"GPU {target!r} is not in the list of GPUs: no verdict for it")
    hints: list[Suggestion] = []
    if chosen is not None and not chosen.fits:
        hints = suggestions(
            cfg, chosen.gpu, lambda c: estimate_on(c, target_bf16), all_gpus, fits_on=estimate_for
        )
    return Plan(
        model=cfg.model.name_or_path,
        shapes_source=shapes.source,
        num_parameters=shapes.num_parameters,
        estimate=estimate,
        tokens=tokens,
        trained_tokens=total,
        gpus=tuple(fitted),
        target=chosen,
        suggestions=tuple(hints),
        notes=(*notes, *estimate.notes),
    )
