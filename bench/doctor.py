"""The dataset doctor on generated chat rows, as a ratio to one plain fast-tokenizer pass.

    python bench/doctor.py [--rows 100000] [--model builtin:tiny-llama]

Generates ``--rows`` chat rows (system/user/assistant, 5-120 words a turn, 2% exact repeats),
then in the same process times (1) one batched call of the model's fast tokenizer over each row's
text (its turns joined; no chat template) and (2) the whole doctor (read, check, prepare, row
findings with duplicates, chat-template rendering and TRL-identical marks for every row,
histogram), and prints the ratio (target <= 2) and the peak memory (ru_maxrss) of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

WORDS = (
    "the a of to in is model data hello world paris france capital what which how why when "
    "python code answer question please thank you sure here is my your gpu cpu token train"
).split()


def _turn(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) + "."


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows: list[str] = []
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            if rows and rng.random() < 0.02:
                line = rng.choice(rows)
            else:
                line = json.dumps(
                    {
                        "messages": [
                            {"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": _turn(rng, 5, 60)},
                            {"role": "assistant", "content": _turn(rng, 5, 120)},
                        ]
                    }
                )
                if len(rows) < 1000:
                    rows.append(line)
            f.write(line + "\n")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--model", default="builtin:tiny-llama")
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()

    from trainer.config import parse_config
    from trainer.doctor import run_doctor
    from trainer.modeling import load_tokenizer, resolve_model_path

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "chat.jsonl"
        write_rows(data, args.rows)
        cfg = parse_config(
            {
                "version": 1,
                "name": "bench-doctor",
                "method": "sft",
                "model": {"name_or_path": args.model},
                "dataset": {"path": str(data)},
                "training": {"max_length": args.max_length},
            }
        )
        tokenizer = load_tokenizer(cfg, resolve_model_path(args.model, Path(tmp)))
        texts = []
        with data.open(encoding="utf-8") as f:
            for line in f:
                texts.append("\n".join(t["content"] for t in json.loads(line)["messages"]))
        started = time.perf_counter()
        ids = tokenizer(texts)["input_ids"]
        plain_s = time.perf_counter() - started
        tokens = sum(len(x) for x in ids)
        del ids, texts

        started = time.perf_counter()
        report = run_doctor(cfg, base_dir=Path(tmp), sample=5)
        doctor_s = time.perf_counter() - started

    print(f"rows: {args.rows:,}  model: {args.model}  plain-pass tokens: {tokens:,}")
    print(f"plain fast-tokenizer pass: {plain_s:8.2f} s")
    print(f"doctor (whole):            {doctor_s:8.2f} s")
    print(f"ratio doctor / plain:      {doctor_s / plain_s:8.2f}  (target <= 2)")
    print(f"peak memory (ru_maxrss):   {peak_mb():8.0f} MB")
    print(
        f"doctor: {report.examples:,} examples, path {report.path}, "
        f"{report.checked_against_trl} sample sequences checked against TRL, "
        f"{len(report.findings)} findings ({', '.join(f.kind for f in report.findings)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
