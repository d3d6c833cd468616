"""One section per method: the options only that method reads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from trainer.config.fields import Section, option


class SFTSection(Section):
    completion_only_loss: bool = option(
        True,
        description="Train only on completion/assistant tokens; prompt tokens get label -100.",
        basic=True,
    )
    packing: bool = option(False, description="Pack several rows into each sequence.")


class CPTSection(Section):
    packing: bool = option(
        True, description="Concatenate documents into full-length blocks.", basic=True
    )


class DPOSection(Section):
    beta: float = option(
        0.1, description="Strength of the KL penalty to the reference model.", basic=True, gt=0
    )
    loss_type: Literal[
        "sigmoid", "ipo", "hinge", "robust", "exo_pair", "bco_pair", "apo_zero", "apo_down"
    ] = option("sigmoid", description="DPO loss variant.")
    label_smoothing: float = option(
        0.0, description="Assumed label noise (robust/cDPO).", ge=0, lt=0.5
    )
    max_prompt_length: int | None = option(
        None, description="Truncate prompts to this many tokens; empty for max_length.", ge=1
    )


class ORPOSection(Section):
    beta: float = option(
        0.1, description="Weight of the odds-ratio term (lambda in the paper).", basic=True, gt=0
    )


class KTOSection(Section):
    beta: float = option(0.1, description="Strength of the KL penalty.", basic=True, gt=0)
    desirable_weight: float = option(
        1.0, description="Loss weight of desirable (label true) rows.", gt=0
    )
    undesirable_weight: float = option(1.0, description="Loss weight of undesirable rows.", gt=0)


RewardName = Annotated[str, Field(min_length=1)]


class GenerationOptions(Section):
    num_generations: int = option(
        4, description="Completions sampled per prompt (the group size).", basic=True, ge=2, le=256
    )
    max_completion_length: int = option(
        128, description="Tokens per sampled completion.", basic=True, ge=1, le=131072
    )
    temperature: float = option(1.0, description="Sampling temperature.", gt=0, le=10)
    beta: float = option(
        0.0,
        title="KL beta",
        description="KL penalty to the reference policy (0 disables it).",
        ge=0,
    )


class GRPOSection(GenerationOptions):
    reward_functions: list[RewardName] = option(
        ["format", "length"],
        description="Rewards added up per completion: built-in names (format, length, "
        "no_repeat, match_reference) or 'path/to/file.py:function'.",
        basic=True,
        min_length=1,
    )
    target_length: int = option(
        64, description="Characters the built-in 'length' reward favours.", ge=1
    )


class RLHFSection(GenerationOptions):
    reward_model: str | None = option(
        None,
        description="An existing reward model (Hub id or folder). Empty: train one first on the "
        "preference pairs.",
        basic=True,
        widget="model",
    )
    reward_dataset: str | None = option(
        None,
        description="Preference pairs for the reward model; empty uses the run's dataset.",
        widget="dataset",
    )
    reward_epochs: float = option(1.0, description="Epochs of reward-model training.", gt=0)
    reward_learning_rate: float = option(
        1e-4, description="Reward-model learning rate.", gt=0, le=1
    )
    policy_algorithm: Literal["rloo", "grpo"] = option(
        "rloo",
        description="Online algorithm that optimises the policy against the reward model.",
        basic=True,
    )


# ---------------------------------------------------------------------------------- whole run
