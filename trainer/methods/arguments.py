"""The TrainingArguments every TRL config shares, translated once from a RunConfig."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.modeling import DevicePlan


def common_args(
    cfg: RunConfig, plan: DevicePlan, output_dir: Path, *, has_eval: bool
) -> dict[str, Any]:
    """Keyword arguments for any TRL ``*Config`` (they all subclass TrainingArguments)."""
    t = cfg.training
    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": t.num_train_epochs,
        "max_steps": t.max_steps if t.max_steps is not None else -1,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "per_device_eval_batch_size": t.per_device_eval_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        # transformers 5 folded warmup_ratio into warmup_steps: a float below 1 is a ratio
        "warmup_steps": t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio,
        "lr_scheduler_type": t.lr_scheduler_type,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "optim": t.optimizer,
        "seed": t.seed,
        "data_seed": t.seed,
        # TRL turns checkpointing on by default; the config decides. transformers 5.23 renamed it
        # activation_checkpointing: the old name set to None stops TRL's default and the warning
        "activation_checkpointing": t.gradient_checkpointing,
        "gradient_checkpointing": None,
        # TRL configs default to bf16=True, which fails on a CPU without use_cpu
        "bf16": plan.precision == "bf16",
        "fp16": plan.precision == "fp16",
        "use_cpu": plan.on_cpu,
        "logging_steps": cfg.logging.logging_steps,
        "logging_first_step": True,
        "report_to": ["tensorboard"] if cfg.logging.tensorboard else "none",
        "eval_strategy": cfg.evaluation.strategy if has_eval else "no",
        "eval_steps": cfg.evaluation.eval_steps,
        "save_strategy": cfg.checkpoint.save_strategy,
        "save_steps": cfg.checkpoint.save_steps,
        "save_total_limit": cfg.checkpoint.save_total_limit,
        # progress bars are noise in a log file; the desktop draws its own charts
        "disable_tqdm": True,
        "dataloader_pin_memory": not plan.on_cpu,
    }
    if t.gradient_checkpointing:
        # reentrant checkpointing breaks with frozen embeddings (LoRA) and warns otherwise
        args["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    if plan.on_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        args["ddp_backend"] = "gloo"
    return args
