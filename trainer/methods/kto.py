"""KTO: unpaired completions labelled desirable or not."""

from __future__ import annotations

from typing import Any

from trainer.methods import MethodContext
from trainer.modeling import lora_config


def build_trainer(ctx: MethodContext) -> Any:
    from trl import KTOConfig, KTOTrainer

    cfg = ctx.cfg
    args = KTOConfig(
        **ctx.args,
        max_length=cfg.training.max_length,
        beta=cfg.kto.beta,
        desirable_weight=cfg.kto.desirable_weight,
        undesirable_weight=cfg.kto.undesirable_weight,
    )
    return KTOTrainer(
        model=ctx.model,
        args=args,
        train_dataset=ctx.train_dataset,
        eval_dataset=ctx.eval_dataset,
        processing_class=ctx.tokenizer,
        peft_config=lora_config(cfg),
        callbacks=ctx.callbacks,
    )
