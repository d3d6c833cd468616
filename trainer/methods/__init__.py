"""Training methods: one module per method, each a thin ``build_trainer(ctx)`` over TRL.

The registry maps a method name to its module, imported only when asked for, so that listing
methods costs nothing and a run loads only the TRL trainer it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from trainer.config import METHODS, RunConfig
from trainer.modeling import DevicePlan, lora_config

MODULES: dict[str, str] = {m: f"trainer.methods.{m}" for m in METHODS}


@dataclass
class MethodContext:
    """Everything a method's builder needs; run.py fills it in, tests build it by hand."""

    cfg: RunConfig
    model: Any
    tokenizer: Any
    train_dataset: Any
    eval_dataset: Any | None
    plan: DevicePlan
    output_dir: Path
    model_path: str  # where the base model loads from (the rlhf reward model starts from it)
    args: dict[str, Any] = field(default_factory=dict)  # common TRL config kwargs
    callbacks: list[Any] = field(default_factory=list)
    base_dir: Path | None = None  # where relative paths in the config (reward files) resolve
    reward_train_dataset: Any | None = None  # rlhf: preference pairs for the reward model
    reward_eval_dataset: Any | None = None
    # callbacks for a preliminary phase's own trainer (rlhf's reward model), by phase name
    phase_callbacks: Callable[[str], list[Any]] = field(default=lambda phase: [])

    def trainer_kwargs(self) -> dict[str, Any]:
        """What every TRL trainer here is given besides its config (and rewards)."""
        return {
            "model": self.model,
            "train_dataset": self.train_dataset,
            "eval_dataset": self.eval_dataset,
            "processing_class": self.tokenizer,
            "peft_config": lora_config(self.cfg),
            "callbacks": self.callbacks,
        }


def method_module(method: str) -> ModuleType:
    """The module that builds ``method``'s trainer."""
    if method not in MODULES:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(MODULES)}")
    return importlib.import_module(MODULES[method])


def build_trainer(ctx: MethodContext) -> Any:
    """A ready ``transformers.Trainer`` for ``ctx.cfg.method``."""
    return method_module(ctx.cfg.method).build_trainer(ctx)
