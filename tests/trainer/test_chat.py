"""The chat verb's parts in-process on the tiny model: requests and their limits, the prompt as
the run's tokenizer and template render it, streaming text that never splits a character,
Stop, seeds, which folder holds which model, and a model too big for memory refused with
numbers."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from trainer.chat import ChatError
from trainer.chat.protocol import parse_generate, parse_rows
from trainer.config import parse_config


def _cfg(model_dir: Path, tmp_path: Path, **model: Any) -> Any:
    return parse_config(
        {
            "name": "chat",
            "method": "sft",
            "model": {"name_or_path": str(model_dir), **model},
            "dataset": {"path": str(tmp_path / "data.jsonl")},
            "output": {"output_dir": str(tmp_path / "out")},
        }
    )


def test_generate_requests_keep_their_limits_and_put_the_system_prompt_first() -> None:
    req = parse_generate(
        {"id": "a", "messages": [{"role": "user", "content": "Hi"}], "system": "Be terse."}
    )
    assert (req.max_new_tokens, req.temperature, req.top_p, req.seed) == (256, 0.7, 0.95, None)
    assert req.conversation() == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
    ]
    assert parse_generate({"prompt": "go on", "temperature": 0}).greedy
    with pytest.raises(ChatError, match=r"temperature: must be between 0 and 5 \(got 9\)"):
        parse_generate({"prompt": "x", "temperature": 9})
    with pytest.raises(ChatError, match=r"messages\[0\]: each turn needs a role"):
        parse_generate({"messages": [{"role": "robot", "content": "x"}]})
    with pytest.raises(ChatError, match="seed"):
        parse_generate({"prompt": "x", "seed": -1})
    with pytest.raises(ChatError, match="split"):
        parse_rows({"split": "test"})


def test_the_prompt_is_rendered_with_the_runs_own_template(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from trainer.chat.generation import prompt_ids
    from trainer.chat.loading import choose_model, load_tokenizer_for

    run_dir = tmp_path / "out"
    run_dir.mkdir()
    custom = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    custom += "{% if add_generation_prompt %}[assistant] {% endif %}"
    cfg = _cfg(tiny_model_dir, tmp_path, chat_template=custom)
    tokenizer = load_tokenizer_for(choose_model(cfg, run_dir, base_only=True), cfg)
    turns = [{"role": "user", "content": "What is the capital of France?"}]
    assert tokenizer.decode(prompt_ids(tokenizer, turns)) == (
        "[user] What is the capital of France?\n[assistant] "
    )
    # the model's own ChatML when the run set none; plain text is tokenised as it is
    cfg = _cfg(tiny_model_dir, tmp_path)
    tokenizer = load_tokenizer_for(choose_model(cfg, run_dir, base_only=True), cfg)
    assert tokenizer.decode(prompt_ids(tokenizer, turns)) == (
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokenizer.decode(prompt_ids(tokenizer, "Once upon")) == "Once upon"


def test_streamed_text_never_splits_a_character(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from trainer.chat.generation import TextStream

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    text = "héllo wörld ✓ done"
    ids = tokenizer(text)["input_ids"]
    pieces: list[str] = []
    stream = TextStream(tokenizer, pieces.append)
    stream.put(torch.tensor([[1, 2, 3]]))  # the prompt comes first and is not echoed
    for i in ids:
        stream.put(torch.tensor([i]))
    stream.end()
    assert "".join(pieces) == text
    assert len(pieces) > 5 and not any("\ufffd" in p for p in pieces)


def test_stop_ends_a_generation_after_the_token_in_progress(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from trainer.chat.generation import generate
    from trainer.chat.loading import choose_model, load_model, load_tokenizer_for, place

    run_dir = tmp_path / "out"
    run_dir.mkdir()
    cfg = _cfg(tiny_model_dir, tmp_path)
    choice = choose_model(cfg, run_dir, base_only=True)
    placement = place(choice, cfg, "cpu")
    tokenizer, model = load_tokenizer_for(choice, cfg), load_model(choice, cfg, placement)
    pieces: list[str] = []
    request = parse_generate(
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "max_new_tokens": 500,
            "min_new_tokens": 500,
            "temperature": 1.0,
            "seed": 3,
        }
    )
    answer = generate(
        model,
        tokenizer,
        request,
        device="cpu",
        should_stop=lambda: len(pieces) >= 3,
        emit=pieces.append,
    )
    # (a token may end inside a character and emit nothing yet: tokens can run ahead of pieces)
    assert answer.reason == "stopped" and 3 <= answer.tokens <= 20
    assert answer.text == "".join(pieces)

    def run(seed: int | None, temperature: float) -> str:
        req = parse_generate(
            {
                "prompt": "the model",
                "max_new_tokens": 12,
                "min_new_tokens": 12,
                "temperature": temperature,
                "seed": seed,
            }
        )
        return generate(
            model, tokenizer, req, device="cpu", should_stop=lambda: False, emit=lambda t: None
        ).text

    assert run(7, 1.0) == run(7, 1.0)  # a seed makes a sampled answer repeatable
    assert len({run(s, 1.0) for s in (1, 2, 3)}) > 1
    assert run(None, 0) == run(None, 0)  # greedy


def test_which_model_each_folder_holds(tiny_model_dir: Path, tmp_path: Path) -> None:
    from trainer.chat.loading import choose_model

    cfg = _cfg(tiny_model_dir, tmp_path)
    run_dir = tmp_path / "out"
    with pytest.raises(ChatError, match="out: the folder of the trained model does not exist"):
        choose_model(cfg, run_dir)
    (run_dir / "checkpoint-10").mkdir(parents=True)
    with pytest.raises(ChatError, match="holds neither an adapter") as err:
        choose_model(cfg, run_dir)
    assert "checkpoint-N" in err.value.hint
    (run_dir / "checkpoint-10" / "adapter_config.json").write_text("{}")
    chosen = choose_model(cfg, run_dir, checkpoint=10)
    assert chosen.is_adapter and chosen.base == str(tiny_model_dir.resolve())
    (run_dir / "config.json").write_text("{}")
    full = choose_model(cfg, run_dir)
    assert not full.is_adapter and full.folder == run_dir
    assert choose_model(cfg, run_dir, base_only=True).folder is None


def _huge_model(folder: Path) -> Path:
    """A model folder whose safetensors header claims 160 GB of float32 weights (the header is
    all the size check reads)."""
    folder.mkdir(parents=True)
    header = json.dumps(
        {
            "model.embed_tokens.weight": {
                "dtype": "F32",
                "shape": [200_000, 200_000],
                "data_offsets": [0, 160_000_000_000],
            }
        }
    ).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    return folder


def test_a_model_too_big_for_memory_is_refused_with_the_numbers(tmp_path: Path) -> None:
    from trainer.chat.loading import choose_model, place

    model = _huge_model(tmp_path / "huge")
    cfg = _cfg(model, tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(ChatError) as err:
        place(choose_model(cfg, tmp_path / "out", base_only=True), cfg, "auto")
    assert "does not fit: it needs about 179.1 GB (149.0 GB of float32 weights)" in str(err.value)
    assert "free" in err.value.message and err.value.hint
