"""Whole runs through ``trainer.run.run``: data file → tiny model → TRL → files on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from trainer.config import ConfigError, parse_config  # noqa: E402
from trainer.run import SUMMARY_FILE, run  # noqa: E402

QA = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Say hello.", "Hello world!"),
    ("Name a color.", "Blue is a color."),
    ("Count to three.", "One two three."),
]


def write_chat(path: Path, repeat: int = 3) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in QA * repeat
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def config(tmp_path: Path, method: str = "sft", **sections: dict[str, Any]) -> Any:
    data: dict[str, Any] = {
        "name": "t",
        "method": method,
        "model": {"name_or_path": "builtin:tiny-llama"},
        "dataset": {"path": str(write_chat(tmp_path / "chat.jsonl")), "eval_fraction": 0.0},
        "training": {"max_steps": 4, "max_length": 64, "per_device_train_batch_size": 4},
        "checkpoint": {"save_strategy": "steps", "save_steps": 2},
        "logging": {"logging_steps": 1},
        "output": {"output_dir": str(tmp_path / "out")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data)


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def test_lora_run_saves_an_adapter_that_reloads_and_generates(tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    result = run(config(tmp_path), "run-1", base_dir=tmp_path)
    out = tmp_path / "out"
    assert result.exit_code == 0 and result.global_step == 4
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["global_step"] == 4 and summary["world_size"] == 1
    assert summary["execution_id"] == "run-1"

    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, tokenize=False
    )
    ids = tok(prompt, return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]
    assert isinstance(tok.decode(gen[0][ids["input_ids"].shape[1] :]), str)


def test_full_fine_tune_with_eval_saves_a_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    cfg = config(
        tmp_path,
        adapter={"kind": "full"},
        dataset={"eval_fraction": 0.25},
        evaluation={"strategy": "steps", "eval_steps": 2},
    )
    result = run(cfg, "run-full", base_dir=tmp_path)
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    assert any("eval_loss" in h for h in result.log_history)
    AutoModelForCausalLM.from_pretrained(str(out))


def test_merge_after_training_writes_a_plain_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = run(
        config(tmp_path, adapter={"merge_after_training": True}), "run-merge", base_dir=tmp_path
    )
    merged = tmp_path / "out" / "merged"
    assert result.merged_dir == str(merged)
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    AutoModelForCausalLM.from_pretrained(str(merged))  # loads without peft


def test_resumed_run_continues_from_its_checkpoint_step(tmp_path: Path) -> None:
    first = run(config(tmp_path), "part-1", base_dir=tmp_path)
    assert first.global_step == 4
    cfg = config(
        tmp_path,
        training={"max_steps": 6},
        checkpoint={"resume_from_checkpoint": "latest"},
    )
    second = run(cfg, "part-2", base_dir=tmp_path)
    assert second.resumed_from_step == 4 and second.global_step == 6
    # the second execution trained steps 5 and 6 only
    log = events(tmp_path / "out")
    start = next(
        i
        for i, e in enumerate(log)
        if e["kind"] == "alert"
        and e["data"]["type"] == "job_started"
        and e["data"]["job_id"] == "part-2"
    )
    steps = [
        e["data"]["step"]
        for e in log[start:]
        if e["kind"] == "metric" and "train_loss" in e["data"]
    ]
    assert steps == [5, 6]


def test_resuming_from_the_last_steps_checkpoint_trains_nothing_more_and_finishes(
    tmp_path: Path,
) -> None:
    """A stop that landed on the last step leaves a checkpoint holding every planned step;
    transformers would train one step past max_steps before checking it. The resume loads the
    checkpoint and finishes: the final model, job_completed at that step, no step 5."""
    first = run(config(tmp_path), "part-1", base_dir=tmp_path)
    assert first.global_step == 4
    out = tmp_path / "out"
    (out / "adapter_model.safetensors").unlink()  # as a stopped run leaves it: no final model
    cfg = config(tmp_path, checkpoint={"resume_from_checkpoint": "latest"})
    second = run(cfg, "part-2", base_dir=tmp_path)
    assert second.resumed_from_step == 4 and second.global_step == 4
    assert (out / "adapter_model.safetensors").is_file()
    log = events(out)
    mine = [e for e in log if e["data"].get("job_id") == "part-2"]
    assert not [e for e in mine if e["kind"] == "metric" and e["data"].get("step", 0) > 4]
    kinds = [e["data"]["type"] for e in mine if e["kind"] == "alert"]
    assert kinds == ["job_started", "job_completed"]
    [done] = [
        e["data"] for e in mine if e["kind"] == "alert" and e["data"]["type"] == "job_completed"
    ]
    assert done["current_step"] == 4


def test_resume_latest_with_no_checkpoint_fails_before_training(tmp_path: Path) -> None:
    cfg = config(tmp_path, checkpoint={"resume_from_checkpoint": "latest"})
    with pytest.raises(ConfigError, match="found no checkpoint"):
        run(cfg, "r", base_dir=tmp_path)
    assert not (tmp_path / "out" / "events.jsonl").exists()


def test_a_push_to_hub_run_pushes_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    pushed: dict[str, Any] = {}

    class Hub:
        def __init__(self, token: str | None = None) -> None:
            pass

        def create_repo(self, **kw: Any) -> None:
            pushed["create"] = kw

        def upload_folder(self, **kw: Any) -> None:
            pushed["files"] = sorted(p.name for p in Path(kw["folder_path"]).iterdir())

    monkeypatch.setattr(huggingface_hub, "HfApi", Hub)
    monkeypatch.delenv("HF_REPO_NAME", raising=False)
    cfg = config(tmp_path, output={"push_to_hub": True, "hub_repo": "me/tiny"})
    result = run(cfg, "push", base_dir=tmp_path)
    assert result.hub_repo == "me/tiny"
    assert pushed["create"]["private"] is True
    assert "adapter_model.safetensors" in pushed["files"]


def test_chat_data_on_a_model_without_a_chat_template_is_a_config_error(tmp_path: Path) -> None:
    from trainer.tiny_model import build_tiny_llama

    model = build_tiny_llama(tmp_path / "base")
    (model / "chat_template.jinja").unlink(missing_ok=True)
    tok_cfg = json.loads((model / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    cfg = config(tmp_path, model={"name_or_path": str(model)})
    with pytest.raises(ConfigError, match=r"model\.chat_template: .* ships no chat template"):
        run(cfg, "no-template", base_dir=tmp_path)


def write_pairs(tmp_path: Path) -> Path:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": [{"role": "user", "content": q}],
                    "chosen": [{"role": "assistant", "content": a}],
                    "rejected": [{"role": "assistant", "content": "no no bad terrible sorry."}],
                }
            )
            for q, a in QA * 2
        )
        + "\n"
    )
    return pairs


def test_rlhf_run_trains_a_reward_model_then_the_policy(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path)
    cfg = config(
        tmp_path,
        method="rlhf",
        dataset={"path": str(pairs)},
        rlhf={
            "num_generations": 2,
            "max_completion_length": 8,
            "reward_epochs": 6,
            "reward_learning_rate": 5e-3,
        },
        training={"max_steps": 2},
    )
    result = run(cfg, "rlhf", base_dir=tmp_path)
    assert result.global_step == 2
    metrics_file = tmp_path / "out" / "reward_model" / "reward_metrics.json"
    metrics = json.loads(metrics_file.read_text())
    assert metrics["pair_accuracy"] > 0.5  # better than chance on its own pairs
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    # the reward phase is on the charts too, under its own name, and the job started with it
    log = events(tmp_path / "out")
    reward_points = [e["data"] for e in log if "reward_model/loss" in e["data"]]
    assert len(reward_points) >= 2
    first_metric = next(i for i, e in enumerate(log) if e["kind"] == "metric")
    started = [i for i, e in enumerate(log) if e["data"].get("type") == "job_started"]
    assert len(started) == 1 and started[0] < first_metric

    # resumed, the policy goes on against the same reward model: it is not trained again
    written = metrics_file.stat().st_mtime_ns
    resumed = cfg.model_copy(deep=True)
    resumed.training.max_steps = 4
    resumed.checkpoint.resume_from_checkpoint = "latest"
    again = run(resumed, "rlhf-2", base_dir=tmp_path)
    assert (again.resumed_from_step, again.global_step) == (2, 4)
    assert metrics_file.stat().st_mtime_ns == written


def test_a_stop_during_the_reward_phase_ends_the_run_before_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    from trl import RewardTrainer

    original = RewardTrainer.training_step

    def step_then_signal(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.state.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what Cancel in the app sends
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RewardTrainer, "training_step", step_then_signal)
    cfg = config(
        tmp_path,
        method="rlhf",
        dataset={"path": str(write_pairs(tmp_path))},
        rlhf={"num_generations": 2, "max_completion_length": 8, "reward_epochs": 20},
        training={"max_steps": 2},
    )
    result = run(cfg, "rlhf-stop", base_dir=tmp_path)
    assert (result.exit_code, result.stop_reason, result.global_step) == (0, "cancelled", 0)
    out = tmp_path / "out"
    # a half-trained reward model is not kept as if it were done: a new run trains it again
    assert not (out / "reward_model" / "reward_metrics.json").exists()
    steps = [e["data"]["step"] for e in events(out) if "reward_model/loss" in e["data"]]
    assert steps and max(steps) <= 3  # it stopped at the end of the signalled step
    alerts = [e["data"]["type"] for e in events(out) if e["kind"] == "alert"]
    assert alerts == ["job_started", "job_cancelled"]
