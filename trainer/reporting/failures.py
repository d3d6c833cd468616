"""What an exception that ended a run becomes in the alerts: gpu_oom advice, job_failed fields."""

from __future__ import annotations

import traceback
from typing import Any

from trainer.config import RunConfig

TRACEBACK_LINES = 25
MESSAGE_CHARS = 2000
_OOM_MARKERS = ("CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "HIP out of memory")


def is_cuda_oom(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError whose message says the GPU ran out."""
    if type(exc).__name__ == "OutOfMemoryError" and type(exc).__module__.startswith("torch"):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MARKERS)


def oom_advice(cfg: RunConfig) -> list[str]:
    """Concrete changes to the config that lower GPU memory, most effective first."""
    t, a = cfg.training, cfg.adapter
    advice: list[str] = []
    if t.per_device_train_batch_size > 1:
        smaller = max(1, t.per_device_train_batch_size // 2)
        factor = t.per_device_train_batch_size // smaller
        advice.append(
            f"training.per_device_train_batch_size {t.per_device_train_batch_size} -> {smaller} "
            f"with training.gradient_accumulation_steps {t.gradient_accumulation_steps} -> "
            f"{t.gradient_accumulation_steps * factor} (same effective batch)"
        )
    else:
        advice.append(
            "training.per_device_train_batch_size is already 1: raise "
            "training.gradient_accumulation_steps instead of the batch size"
        )
    if not t.gradient_checkpointing:
        advice.append("training.gradient_checkpointing on (about 30% slower, far less memory)")
    if t.max_length > 256:
        advice.append(f"training.max_length {t.max_length} -> {t.max_length // 2}")
    if a.kind != "qlora":
        advice.append(
            "adapter.kind 'qlora' with adapter.quantization_bits 4 (needs bitsandbytes)"
            if a.kind == "lora"
            else "adapter.kind 'lora' or 'qlora' instead of full fine-tuning"
        )
    elif a.quantization_bits == 8:
        advice.append("adapter.quantization_bits 8 -> 4")
    if cfg.method in ("grpo", "rlhf"):
        gen = cfg.grpo if cfg.method == "grpo" else cfg.rlhf
        advice.append(
            f"{cfg.method}.num_generations {gen.num_generations} or "
            f"{cfg.method}.max_completion_length {gen.max_completion_length} lower"
        )
    return advice


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def failure_fields(exc: BaseException) -> dict[str, Any]:
    """job_failed fields for ``exc``: type, message, the end of the traceback, a hint if any."""
    message = str(exc) or type(exc).__name__
    fields: dict[str, Any] = {
        "error_type": type(exc).__name__,
        "error_message": message[:MESSAGE_CHARS],
        "traceback": traceback_tail(exc),
    }
    hint = getattr(exc, "hint", None)
    if isinstance(hint, str) and hint:
        fields["hint"] = hint
    return fields
