"""Which GPUs a run fits on, and what would make it fit when it does not.

The changes are tried in a fixed order, cheapest in quality and time first:

1. a smaller micro-batch with more gradient accumulation (the same effective batch: the same
   training, only slower);
2. gradient checkpointing (about 30% slower, same result);
3. a 4-bit base (QLoRA: adapters on an NF4-quantised model; a small quality cost);
4. a shorter max length (rows are cut: a real change to what is learnt);
5. a larger GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trainer.config import RunConfig
from trainer.planner.memory import GIB, RUNTIME_RESERVE_BYTES, MemoryEstimate

MIN_MAX_LENGTH = 256  # shorter than this a chat row rarely survives


@dataclass(frozen=True)
class GpuOffer:
    """A GPU one can train on: its name, memory (GB as sold, ~GiB) and price per GPU-hour
    (None: not known; 0: this computer's own)."""

    name: str
    memory_gb: float
    price_per_hour: float | None = None
    count: int = 1
    local: bool = False

    @property
    def usable_bytes(self) -> int:
        """What a training process can allocate: the card's memory less the CUDA context and
        allocator reserve."""
        return int(self.memory_gb * GIB) - RUNTIME_RESERVE_BYTES


def fits(estimate: MemoryEstimate, gpu: GpuOffer) -> bool:
    return estimate.peak_bytes <= gpu.usable_bytes


def _with(cfg: RunConfig, **sections: dict[str, Any]) -> RunConfig:
    data = cfg.model_dump()
    for name, changes in sections.items():
        data[name] = {**data[name], **changes}
    return RunConfig.model_validate(data)


# ------------------------------------------------------------------- the changes, in order


def smaller_micro_batch(cfg: RunConfig) -> tuple[RunConfig, str] | None:
    """Halve the micro-batch and double the accumulation (KTO keeps 2 rows per batch)."""
    t = cfg.training
    floor = 2 if cfg.method == "kto" else 1
    if t.per_device_train_batch_size // 2 < floor or t.per_device_train_batch_size % 2:
        return None
    b, ga = t.per_device_train_batch_size // 2, t.gradient_accumulation_steps * 2
    return (
        _with(cfg, training={"per_device_train_batch_size": b, "gradient_accumulation_steps": ga}),
        f"batch size {t.per_device_train_batch_size} → {b} with gradient accumulation "
        f"{t.gradient_accumulation_steps} → {ga} (same effective batch)",
    )


def gradient_checkpointing(cfg: RunConfig) -> tuple[RunConfig, str] | None:
    if cfg.training.gradient_checkpointing:
        return None
    return (
        _with(cfg, training={"gradient_checkpointing": True}),
        "gradient checkpointing on (about 30% slower)",
    )


def four_bit_base(cfg: RunConfig) -> tuple[RunConfig, str] | None:
    if cfg.adapter.kind == "qlora" and cfg.adapter.quantization_bits == 4:
        return None
    before = "full fine-tuning" if cfg.adapter.kind == "full" else cfg.adapter.kind.upper()
    return (
        _with(cfg, adapter={"kind": "qlora", "quantization_bits": 4}),
        f"a 4-bit base: {before} → QLoRA (NF4)",
    )


def shorter_max_length(cfg: RunConfig) -> tuple[RunConfig, str] | None:
    length = cfg.training.max_length
    if length // 2 < MIN_MAX_LENGTH:
        return None
    return (
        _with(cfg, training={"max_length": length // 2}),
        f"max length {length} → {length // 2} tokens (longer rows are cut)",
    )


CHANGES: tuple[Callable[[RunConfig], tuple[RunConfig, str] | None], ...] = (
    smaller_micro_batch,
    gradient_checkpointing,
    four_bit_base,
    shorter_max_length,
)


def less_memory_variant(cfg: RunConfig) -> tuple[RunConfig, str] | None:
    """The config with the first applicable change of the list applied, and its name; None when
    none applies (then only a larger GPU helps)."""
    for change in CHANGES:
        found = change(cfg)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Suggestion:
    description: str
    peak_bytes: int
    fits: bool
    config: RunConfig | None = None  # None for "a larger GPU"
    gpu: GpuOffer | None = None


def suggestions(
    cfg: RunConfig,
    target: GpuOffer,
    estimate_of: Callable[[RunConfig], MemoryEstimate],
    gpus: Sequence[GpuOffer] = (),
    fits_on: Callable[[GpuOffer], MemoryEstimate] | None = None,
) -> list[Suggestion]:
    """What would make ``cfg`` fit on ``target``, in the order of the module docstring.

    The config changes build on each other (each is re-estimated with the ones before it
    applied; a change is applied repeatedly while it helps and still does not fit, e.g. the
    batch halved twice), and stop at the first that fits. Then the cheapest larger GPU that
    fits the config as it is (``fits_on(gpu)``: the config's estimate on that GPU, when it
    differs from GPU to GPU; default ``estimate_of(cfg)``)."""
    found: list[Suggestion] = []
    current = cfg
    done = False
    for change in CHANGES:
        while not done:
            step = change(current)
            if step is None:
                break
            current, description = step
            estimate = estimate_of(current)
            ok = fits(estimate, target)
            found.append(Suggestion(description, estimate.peak_bytes, ok, current))
            done = ok
            if change is not smaller_micro_batch and change is not shorter_max_length:
                break
        if done:
            break
    original = estimate_of(cfg)
    on = fits_on or (lambda _gpu: original)
    larger = sorted(
        (g for g in gpus if g.memory_gb > target.memory_gb and fits(on(g), g)),
        key=lambda g: (g.price_per_hour if g.price_per_hour is not None else 1e9, g.memory_gb),
    )
    if larger:
        gpu = larger[0]
        price = f", ${gpu.price_per_hour:.2f}/h" if gpu.price_per_hour is not None else ""
        found.append(
            Suggestion(
                f"a larger GPU: {gpu.name} ({gpu.memory_gb:g} GB{price})",
                on(gpu).peak_bytes,
                True,
                gpu=gpu,
            )
        )
    return found
