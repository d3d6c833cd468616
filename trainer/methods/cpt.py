"""Continued pre-training: raw text, packed into full-length blocks, loss on every token."""

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
        packing=cfg.cpt.packing,
        # one stream of text cut into max_length blocks; "bfd" would drop what overflows a block
        packing_strategy="wrapped",
        completion_only_loss=False,
        dataset_text_field="text",
    )
    return SFTTrainer(
        args=args,
        **ctx.trainer_kwargs(),
    )
