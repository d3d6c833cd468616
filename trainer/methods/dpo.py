"""DPO: preference pairs against a frozen reference (the adapter switched off, under LoRA)."""

from __future__ import annotations

from typing import Any

from trainer.methods import MethodContext


def build_trainer(ctx: MethodContext) -> Any:
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    cfg = ctx.cfg
    args = DPOConfig(
        **ctx.args,
        max_length=cfg.training.max_length,
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        label_smoothing=cfg.dpo.label_smoothing,
    )
    trainer = DPOTrainer(
        args=args,
        **ctx.trainer_kwargs(),
    )
    if cfg.dpo.max_prompt_length is not None:
        _truncate_prompts(trainer, cfg.dpo.max_prompt_length)
    return trainer


def _truncate_prompts(trainer: Any, limit: int) -> None:
    """Keep the last ``limit`` prompt tokens (TRL 1.16 dropped max_prompt_length).

    The end of a prompt, next to the answer, is what the answer depends on most."""

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        return {"prompt_ids": row["prompt_ids"][-limit:]}

    trainer.train_dataset = trainer.train_dataset.map(cut)
    if trainer.eval_dataset is not None and hasattr(trainer.eval_dataset, "map"):
        trainer.eval_dataset = trainer.eval_dataset.map(cut)
