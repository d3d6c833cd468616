"""GRPO: sample a group of completions per prompt, score them with reward functions, and push
the policy toward the better ones in each group."""

from __future__ import annotations

from typing import Any

from trainer.config import ConfigError, GenerationOptions
from trainer.methods import MethodContext
from trainer.methods.rewards import RewardLoadError, reward_functions


def generation_args(ctx: MethodContext, gen: GenerationOptions) -> dict[str, Any]:
    """The sampling part of a GRPO or RLOO config, shared with rlhf."""
    args = dict(ctx.args)
    # every evaluation batch must hold whole groups, as the training batch must (config checks it)
    groups = -(-args["per_device_eval_batch_size"] // gen.num_generations)
    args["per_device_eval_batch_size"] = groups * gen.num_generations
    args.update(
        num_generations=gen.num_generations,
        max_completion_length=gen.max_completion_length,
        temperature=gen.temperature,
        beta=gen.beta,
    )
    return args


def build_trainer(ctx: MethodContext) -> Any:
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.grpo_trainer import RewardFunc as TRLRewardFunc

    cfg = ctx.cfg
    try:
        # TRL's parameter is a list of the wider union (model ids and models too); list is
        # invariant, so ours is copied into a list of that type
        rewards: list[TRLRewardFunc] = [*reward_functions(cfg, ctx.base_dir)]
    except RewardLoadError as err:
        raise ConfigError([str(err)]) from None
    return GRPOTrainer(
        reward_funcs=rewards,
        args=GRPOConfig(**generation_args(ctx, cfg.grpo)),
        **ctx.trainer_kwargs(),
    )
