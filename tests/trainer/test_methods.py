"""Every method trains for real on the tiny model, and each shows the outcome it exists for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from datasets import Dataset  # noqa: E402

from trainer.config import ConfigError, parse_config  # noqa: E402
from trainer.methods import MethodContext, build_trainer  # noqa: E402
from trainer.methods.arguments import common_args  # noqa: E402
from trainer.modeling import load_causal_lm, load_tokenizer, plan_device  # noqa: E402

QA = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Say hello.", "Hello world!"),
    ("Name a color.", "Blue is a color."),
    ("Count to three.", "One two three."),
]
BAD = "no no bad terrible sorry."


def user(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


def bot(a: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": a}]


ROWS: dict[str, list[dict[str, Any]]] = {
    "sft": [{"prompt": user(q), "completion": bot(a)} for q, a in QA],
    "cpt": [{"text": f"{q} {a}"} for q, a in QA] * 2,
    "dpo": [{"prompt": user(q), "chosen": bot(a), "rejected": bot(BAD)} for q, a in QA],
    "kto": [{"prompt": user(q), "completion": bot(a), "label": True} for q, a in QA]
    + [{"prompt": user(q), "completion": bot(BAD), "label": False} for q, _ in QA],
    "grpo": [{"prompt": user(q), "reference": a.split()[0]} for q, a in QA],
}
ROWS["orpo"] = ROWS["dpo"]
ROWS["rlhf"] = [{"prompt": user(q)} for q, _ in QA]
# the reward model's pairs: TRL's implicit-prompt form, the prompt folded into both answers
REWARD_ROWS = [{"chosen": user(q) + bot(a), "rejected": user(q) + bot(BAD)} for q, a in QA]


def make_ctx(
    model_dir: Path,
    out: Path,
    method: str,
    *,
    kind: str = "lora",
    rows: list[dict[str, Any]] | None = None,
    eval_rows: list[dict[str, Any]] | None = None,
    **sections: dict[str, Any],
) -> MethodContext:
    data: dict[str, Any] = {
        "method": method,
        "model": {"name_or_path": str(model_dir)},
        "adapter": {"kind": kind, "r": 8, "alpha": 16, "dropout": 0.0},
        "training": {"max_steps": 2, "max_length": 64, "per_device_train_batch_size": 4},
        "logging": {"logging_steps": 1},
        "checkpoint": {"save_strategy": "no"},
        "grpo": {"num_generations": 2, "max_completion_length": 8},
        "rlhf": {"num_generations": 2, "max_completion_length": 8, "reward_epochs": 1},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    cfg = parse_config(data)
    plan = plan_device(cfg)
    eval_ds = Dataset.from_list(eval_rows) if eval_rows else None
    return MethodContext(
        cfg=cfg,
        model=load_causal_lm(cfg, str(model_dir), plan),
        tokenizer=load_tokenizer(cfg, str(model_dir)),
        train_dataset=Dataset.from_list(rows or ROWS[method]),
        eval_dataset=eval_ds,
        plan=plan,
        output_dir=out,
        model_path=str(model_dir),
        args=common_args(cfg, plan, out, has_eval=eval_ds is not None),
        reward_train_dataset=Dataset.from_list(REWARD_ROWS),
    )


def trainable_snapshot(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def losses(trainer: Any) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("kind", ["lora", "full"])
@pytest.mark.parametrize("method", ["sft", "cpt", "dpo", "orpo", "kto", "grpo", "rlhf"])
def test_every_method_trains_its_weights(
    method: str, kind: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ctx = make_ctx(tiny_model_dir, tmp_path, method, kind=kind)
    trainer = build_trainer(ctx)
    before = trainable_snapshot(trainer.model)
    if kind == "lora":
        # only the adapters train; the base weights stay as they were
        assert before and all("lora_" in n for n in before)
    trainer.train()
    after = trainable_snapshot(trainer.model)
    assert trainer.state.global_step == 2
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    if method in ("grpo", "rlhf"):
        # the online loop ran: completions were sampled and scored
        assert any("reward" in k for h in trainer.state.log_history for k in h)
    assert changed, f"{method}/{kind}: no trainable weight moved"


def test_sft_loss_falls_below_half_on_memorisable_rows(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    ctx = make_ctx(
        tiny_model_dir,
        tmp_path,
        "sft",
        kind="full",
        training={"max_steps": 40, "learning_rate": 3e-3, "lr_scheduler_type": "constant"},
    )
    trainer = build_trainer(ctx)
    trainer.train()
    seen = losses(trainer)
    assert seen[-1] < seen[0] / 2, seen


def test_sft_lora_loss_falls(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(
        tiny_model_dir,
        tmp_path,
        "sft",
        adapter={"r": 16, "alpha": 32},
        training={"max_steps": 25, "learning_rate": 1e-2, "lr_scheduler_type": "constant"},
    )
    trainer = build_trainer(ctx)
    trainer.train()
    seen = losses(trainer)
    accuracy = [h["mean_token_accuracy"] for h in trainer.state.log_history if "loss" in h]
    # adapters on a random base cannot sharpen its flat output much, but they do learn the
    # answers: next-token accuracy on the completions climbs to (nearly) all of them
    assert seen[-1] < seen[0], seen
    assert accuracy[-1] >= 0.9 > accuracy[0], accuracy


def test_sft_prompt_tokens_carry_label_minus_100(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tiny_model_dir, tmp_path, "sft")
    trainer = build_trainer(ctx)
    batch = next(iter(trainer.get_train_dataloader()))
    tok = ctx.tokenizer
    answers = {a for _, a in QA}
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        kept = [int(i) for i, lab in zip(ids, labels, strict=True) if lab != -100]
        masked = [int(i) for i, lab in zip(ids, labels, strict=True) if lab == -100]
        learnt = tok.decode(kept)
        # what the loss sees is exactly one answer (and its end-of-turn), never the question
        assert any(learnt.startswith(a) for a in answers), learnt
        prompt = tok.decode(masked)
        assert "<|im_start|>user" in prompt
        assert any(q in prompt for q, _ in QA)


def test_sft_without_completion_only_loss_learns_the_prompt_too(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    ctx = make_ctx(tiny_model_dir, tmp_path, "sft", sft={"completion_only_loss": False})
    batch = next(iter(build_trainer(ctx).get_train_dataloader()))
    learnt = ctx.tokenizer.decode(
        [
            int(i)
            for i, lab in zip(batch["input_ids"][0], batch["labels"][0], strict=True)
            if lab != -100
        ]
    )
    assert "user" in learnt


def test_cpt_packs_text_into_full_blocks(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [{"text": " ".join(f"{q} {a}" for q, a in QA)} for _ in range(6)]
    ctx = make_ctx(tiny_model_dir, tmp_path, "cpt", rows=rows, training={"max_length": 16})
    trainer = build_trainer(ctx)
    # six documents of more than 16 tokens become more, full, 16-token blocks
    lengths = [len(r["input_ids"]) for r in trainer.train_dataset]
    assert len(lengths) > len(rows)
    assert max(lengths) == 16


def test_dpo_reward_margin_grows(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(
        tiny_model_dir,
        tmp_path,
        "dpo",
        eval_rows=ROWS["dpo"],
        training={"max_steps": 12, "learning_rate": 5e-3, "lr_scheduler_type": "constant"},
    )
    trainer = build_trainer(ctx)
    before = trainer.evaluate()["eval_rewards/margins"]
    trainer.train()
    after = trainer.evaluate()["eval_rewards/margins"]
    assert after > before + 0.05, (before, after)


def test_dpo_max_prompt_length_cuts_prompts(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tiny_model_dir, tmp_path, "dpo", dpo={"max_prompt_length": 3})
    trainer = build_trainer(ctx)
    assert max(len(r["prompt_ids"]) for r in trainer.train_dataset) == 3


def test_orpo_prefers_chosen_after_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(
        tiny_model_dir,
        tmp_path,
        "orpo",
        eval_rows=ROWS["orpo"],
        training={"max_steps": 12, "learning_rate": 5e-3, "lr_scheduler_type": "constant"},
    )
    trainer = build_trainer(ctx)
    before = trainer.evaluate()["eval_rewards/margins"]
    trainer.train()
    assert trainer.evaluate()["eval_rewards/margins"] > before


def test_kto_needs_two_rows_per_batch() -> None:
    with pytest.raises(ConfigError, match="KTO needs at least 2"):
        parse_config({"method": "kto", "training": {"per_device_train_batch_size": 1}})


def test_grpo_calls_a_user_reward_function(tiny_model_dir: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    reward_file = tmp_path / "my_reward.py"
    reward_file.write_text(
        "def shorter_is_better(completions, **kwargs):\n"
        f"    with open({str(calls)!r}, 'a') as f:\n"
        "        f.write(str(len(completions)) + '\\n')\n"
        "    return [-float(len(str(c))) for c in completions]\n",
        encoding="utf-8",
    )
    ctx = make_ctx(
        tiny_model_dir,
        tmp_path,
        "grpo",
        grpo={"reward_functions": ["format", f"{reward_file}:shorter_is_better"]},
    )
    trainer = build_trainer(ctx)
    trainer.train()
    # 4 prompts x 2 generations per step, two steps
    assert calls.read_text().split() == ["4", "4"]
    logged = {k for h in trainer.state.log_history for k in h}
    assert any("shorter_is_better" in k for k in logged), logged


def test_grpo_bad_reward_name_is_a_config_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tiny_model_dir, tmp_path, "grpo", grpo={"reward_functions": ["nope"]})
    with pytest.raises(ConfigError, match=r"grpo\.reward_functions"):
        build_trainer(ctx)


def test_rlhf_reward_model_ranks_its_pairs_better_than_chance(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from trainer.methods.rlhf import REWARD_DIR, pair_accuracy

    ctx = make_ctx(
        tiny_model_dir,
        tmp_path,
        "rlhf",
        rlhf={
            "reward_epochs": 8,
            "reward_learning_rate": 5e-3,
            "num_generations": 2,
            "max_completion_length": 8,
        },
    )
    pairs = Dataset.from_list(REWARD_ROWS)
    trainer = build_trainer(ctx)
    # the trained reward model is the policy trainer's reward function, and is saved
    reward_model = trainer.reward_funcs[0]
    accuracy = pair_accuracy(reward_model, ctx.tokenizer, pairs)
    assert accuracy == 1.0, accuracy
    assert (tmp_path / REWARD_DIR / "config.json").is_file()
    assert (tmp_path / REWARD_DIR / "reward_metrics.json").is_file()
    trainer.train()
    assert trainer.state.global_step == 2


def test_rlhf_with_grpo_policy_and_a_named_reward_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification

    reward_dir = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(
        str(tiny_model_dir), num_labels=1
    ).save_pretrained(reward_dir)
    load_tokenizer(parse_config({}), str(tiny_model_dir)).save_pretrained(reward_dir)
    ctx = make_ctx(
        tiny_model_dir,
        tmp_path / "out",
        "rlhf",
        rlhf={"reward_model": str(reward_dir), "policy_algorithm": "grpo"},
    )
    trainer = build_trainer(ctx)
    assert type(trainer).__name__ == "GRPOTrainer"
    assert not (tmp_path / "out" / "reward_model").exists()  # nothing trained: it was given
    trainer.train()
    assert trainer.state.global_step == 2


def test_rlhf_refuses_a_model_without_a_reward_head(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = make_ctx(tiny_model_dir, tmp_path, "rlhf", rlhf={"reward_model": str(tiny_model_dir)})
    with pytest.raises(ConfigError, match="no trained reward head"):
        build_trainer(ctx)
