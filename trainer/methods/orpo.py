"""ORPO: preference pairs, no reference model; the odds-ratio term rides on the SFT loss."""

from __future__ import annotations

from typing import Any

from trainer.methods import MethodContext


def build_trainer(ctx: MethodContext) -> Any:
    # TRL 1.16 keeps ORPO under experimental
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    cfg = ctx.cfg
    args = ORPOConfig(**ctx.args, max_length=cfg.training.max_length, beta=cfg.orpo.beta)
    return ORPOTrainer(
        args=args,
        **ctx.trainer_kwargs(),
    )
