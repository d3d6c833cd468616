"""A tiny random Llama with a real BPE tokenizer and a ChatML template, built in about 0.1 s.

It stands in for a real model where none can be downloaded: the built-in demo
(``model.name_or_path = "builtin:tiny-llama"``) and the test suite. Its weights are random, but it
trains for real, so losses fall and charts move.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import cast

from trainer.builtin_models import (
    BUILTIN_MODELS,
    BUILTIN_PREFIX,
    SMOLLM2,
    TINY_LLAMA,
    smollm2_gguf_file,
)

__all__ = ["BUILTIN_MODELS", "BUILTIN_PREFIX", "SMOLLM2", "TINY_LLAMA", "smollm2_gguf_file"]

# ChatML with {% generation %} markers so that TRL's assistant_only_loss can find the assistant
# tokens. The markers are no-ops when a template is rendered without return_assistant_tokens_mask.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

_WORDS = (
    "the a an of to in is was for on that with as by at from it this be are or not have "
    "model data train loss learning rate step epoch token answer question user assistant "
    "system hello world paris france capital what which who how why when where yes no good "
    "bad great terrible helpful harmless honest python code function return value number one "
    "two three four five six seven eight nine ten red green blue cat dog bird sun moon star "
    "please thank you sorry sure here is my your our their tunedeck fine tuning gpu cpu"
).split()


def _corpus(lines: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 16))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        out.append(" ".join(words) + rng.choice([".", "?", "!", ""]))
    # digits and punctuation so that arbitrary user data tokenises without falling apart
    out.append("0 1 2 3 4 5 6 7 8 9 , . ; : ! ? ' \" ( ) [ ] { } - + * / = < > # @ & %")
    return out


def build_tiny_llama(
    folder: str | Path,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny LlamaForCausalLM and its tokenizer to ``folder``; return the folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    bpe_trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed=seed), trainer=bpe_trainer)
    # transformers leaves this constructor unannotated (it takes **kwargs)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    return folder


def build_smollm2(folder: str | Path) -> Path:
    """Write SmolLM2-135M-Instruct (dequantised from its GGUF) as a plain Llama folder.

    transformers loads a GGUF but will not save it again, so the weights are copied into a
    LlamaForCausalLM built from the same config (about 30 s, 1.5 GB peak)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = smollm2_gguf_file()
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # SmolLM2's GGUF is a llama architecture, so from_pretrained built a LlamaConfig
    plain = LlamaForCausalLM(cast(LlamaConfig, config))
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def builtin_model_folder(name: str, cache_dir: str | Path) -> Path:
    """Build (once) and return the folder of a built-in model such as 'builtin:tiny-llama'."""
    builders = {TINY_LLAMA: build_tiny_llama, SMOLLM2: build_smollm2}
    if name not in builders:
        raise ValueError(
            f"unknown built-in model {name!r}; the built-in ones are {', '.join(BUILTIN_MODELS)}"
        )
    folder = Path(cache_dir) / name.removeprefix(BUILTIN_PREFIX)
    if not (folder / "config.json").exists():
        tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        builders[name](tmp)
        try:
            tmp.replace(folder)  # atomic: a half-built model never looks complete
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
