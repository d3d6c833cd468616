"""KTO: unpaired completions labelled desirable or not."""

from __future__ import annotations

from typing import Any

from trainer.methods import MethodContext


def build_trainer(ctx: MethodContext) -> Any:
    from trl.trainer.kto_config import KTOConfig
    from trl.trainer.kto_trainer import KTOTrainer

    cfg = ctx.cfg
    args = KTOConfig(
        **ctx.args,
        max_length=cfg.training.max_length,
        beta=cfg.kto.beta,
        desirable_weight=cfg.kto.desirable_weight,
        undesirable_weight=cfg.kto.undesirable_weight,
    )
    return KTOTrainer(
        args=args,
        **ctx.trainer_kwargs(),
    )
