"""RLHF: a reward model trained on preference pairs (or one the user names), then the policy
optimised online against it with RLOO or GRPO.

TRL 1.13 removed PPO; RLOO and GRPO take a sequence-classification model as a reward function
and score prompt + completion with it. The reward model is trained first, saved under
``reward_model/`` in the output folder (merged, so it loads without peft), and checked: its
accuracy on preference pairs is written beside it, because a reward head that never learnt is
not a reward model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from trainer.config import ConfigError
from trainer.methods import MethodContext
from trainer.methods.grpo import generation_args
from trainer.modeling import load_reward_model, load_tokenizer, lora_config, resolve_model_path

REWARD_DIR = "reward_model"


def build_trainer(ctx: MethodContext) -> Any:
    cfg = ctx.cfg
    saved = ctx.output_dir / REWARD_DIR
    if cfg.rlhf.reward_model:
        reward_model, reward_tokenizer = load_named_reward_model(ctx)
    elif cfg.checkpoint.resume_from_checkpoint and (saved / "reward_metrics.json").is_file():
        # a resumed run optimises against the reward model it started with, not a retrained one
        reward_model, reward_tokenizer = load_named_reward_model(ctx, str(saved))
    else:
        reward_model, reward_tokenizer = train_reward_model(ctx)
    reward_model.eval()

    policy: dict[str, Any] = {
        "model": ctx.model,
        "reward_funcs": reward_model,
        "reward_processing_classes": reward_tokenizer,
        "train_dataset": ctx.train_dataset,
        "eval_dataset": ctx.eval_dataset,
        "processing_class": ctx.tokenizer,
        "peft_config": lora_config(cfg),
        "callbacks": ctx.callbacks,
    }
    if cfg.rlhf.policy_algorithm == "rloo":
        from trl.trainer.rloo_config import RLOOConfig
        from trl.trainer.rloo_trainer import RLOOTrainer

        return RLOOTrainer(args=RLOOConfig(**generation_args(ctx, cfg.rlhf)), **policy)
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    return GRPOTrainer(args=GRPOConfig(**generation_args(ctx, cfg.rlhf)), **policy)


def load_named_reward_model(ctx: MethodContext, name: str | None = None) -> tuple[Any, Any]:
    """A trained reward model (the user's, by default); refused when its reward head would be
    freshly random."""
    from transformers import AutoModelForSequenceClassification

    cfg = ctx.cfg
    name = name or cfg.rlhf.reward_model or ""
    path = resolve_model_path(name, ctx.base_dir)
    tokenizer = load_tokenizer(cfg, path)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, output_loading_info=True, trust_remote_code=cfg.model.trust_remote_code
    )
    fresh = [k for k in info.get("missing_keys", []) if "score" in k or "classifier" in k]
    if fresh:
        raise ConfigError(
            [
                f"rlhf.reward_model: {name!r} has no trained reward head "
                f"({', '.join(sorted(fresh))} missing); name a sequence-classification "
                "reward model, or leave it empty to train one on the preference pairs"
            ]
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def reward_args(ctx: MethodContext) -> dict[str, Any]:
    """The run's common arguments, adapted to the short reward-model phase."""
    cfg = ctx.cfg
    args = dict(ctx.args)
    args.update(
        output_dir=str(ctx.output_dir / REWARD_DIR),
        num_train_epochs=cfg.rlhf.reward_epochs,
        learning_rate=cfg.rlhf.reward_learning_rate,
        # the step budget belongs to the policy; the reward model trains for its epochs
        max_steps=-1,
        save_strategy="no",
        eval_strategy="epoch" if ctx.reward_eval_dataset is not None else "no",
        report_to="none",
    )
    return args


def train_reward_model(ctx: MethodContext) -> tuple[Any, Any]:
    """Train a reward model on ``ctx.reward_train_dataset``; save it; return (model, tokenizer)."""
    from trl.trainer.reward_config import RewardConfig
    from trl.trainer.reward_trainer import RewardTrainer

    cfg = ctx.cfg
    if ctx.reward_train_dataset is None:
        raise ConfigError(
            [
                "rlhf.reward_dataset: no preference pairs to train the reward model on; give "
                "prompt/chosen/rejected rows, or name a trained model in rlhf.reward_model"
            ]
        )
    tokenizer = ctx.tokenizer
    model = load_reward_model(cfg, ctx.model_path, ctx.plan, tokenizer.pad_token_id)
    callbacks = ctx.phase_callbacks(REWARD_DIR)
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(**reward_args(ctx), max_length=cfg.training.max_length),
        train_dataset=ctx.reward_train_dataset,
        eval_dataset=ctx.reward_eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg, task_type="SEQ_CLS"),
        callbacks=callbacks,
    )
    trainer.train()
    # a PeftModel reaches merge_and_unload through __getattr__, which mypy cannot see
    model = cast(Any, trainer.model)
    if any(getattr(cb, "stopped_by", None) for cb in callbacks):
        # stopped part-way: nothing is saved, so that a later run trains it again in full
        # rather than optimising a policy against a half-trained reward model
        return model, tokenizer
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    pairs = (
        ctx.reward_eval_dataset if ctx.reward_eval_dataset is not None else ctx.reward_train_dataset
    )
    accuracy = pair_accuracy(model, tokenizer, pairs)
    folder = ctx.output_dir / REWARD_DIR
    if trainer.is_world_process_zero():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _write_metrics(folder, accuracy, len(pairs), trainer.state.global_step)
    return model, tokenizer


def _write_metrics(folder: Path, accuracy: float, pairs: int, steps: int) -> None:
    (folder / "reward_metrics.json").write_text(
        json.dumps({"pair_accuracy": accuracy, "pairs": pairs, "steps": steps}, indent=2),
        encoding="utf-8",
    )


def _as_text(value: Any, tokenizer: Any) -> str:
    # the same rendering RewardTrainer trains on: chat template, or text ending in eos
    if isinstance(value, list):
        return str(tokenizer.apply_chat_template(value, tokenize=False))
    text = str(value)
    return text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token


def reward_scores(
    model: Any, tokenizer: Any, values: list[Any], batch_size: int = 8
) -> list[float]:
    """The reward model's score for each text or conversation."""
    import torch

    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(values), batch_size):
        texts = [_as_text(v, tokenizer) for v in values[start : start + batch_size]]
        batch = tokenizer(
            texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False
        ).to(device)
        with torch.inference_mode():
            scores.extend(model(**batch).logits[:, 0].float().tolist())
    return scores


def pair_accuracy(model: Any, tokenizer: Any, pairs: Any) -> float:
    """Share of pairs whose chosen answer the reward model scores above the rejected one."""
    was_training = model.training
    model.eval()
    chosen = reward_scores(model, tokenizer, list(pairs["chosen"]))
    rejected = reward_scores(model, tokenizer, list(pairs["rejected"]))
    model.train(was_training)
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    return wins / max(1, len(chosen))
