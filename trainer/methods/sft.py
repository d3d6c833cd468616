"""Supervised fine-tuning: chat, prompt/completion or text rows; prompts masked from the loss."""

from __future__ import annotations

from typing import Any

from trainer.methods import MethodContext


def build_trainer(ctx: MethodContext) -> Any:
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    cfg = ctx.cfg
    args = SFTConfig(
        **ctx.args,
        max_length=cfg.training.max_length,
        packing=cfg.sft.packing,
        # prompt/completion rows (what chat data is turned into) get label -100 on the prompt
        completion_only_loss=cfg.sft.completion_only_loss,
        dataset_text_field="text",
    )
    return SFTTrainer(
        args=args,
        **ctx.trainer_kwargs(),
    )
