"""The dataset doctor on generated chat rows, as a ratio to one plain fast-tokenizer pass.

    python bench/doctor.py [--rows 100000] [--model builtin:tiny-llama]

Generates ``--rows`` chat rows (system/user/assistant, 5-120 words a turn, 2% exact repeats),
then, in the same run, times (1) one batched call of the model's fast tokenizer over each row's
text (its turns joined; no chat template; the file already read and the tokenizer loaded) and
(2) the whole doctor (reading the file, importing TRL, loading the tokenizer, checks, row findings
with duplicates, chat-template rendering and TRL-identical marks for every row, histogram), each
in a fresh process so that each peak memory (ru_maxrss) is its own, and prints the ratio
(target <= 2). The doctor forks helpers (findings, two chunk workers); their CPU time is counted
with its own, and the largest helper's peak is printed beside the doctor's. CPU seconds say how
much work each side did when the machine is shared and the wall clock is noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def children_peak_mb() -> float:
    """The largest of the doctor's forked helpers (findings, chunk workers), each its own."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: the work done, whatever the wall
    clock says on a shared machine."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _config(data: Path, model: str, max_length: int) -> Any:
    from trainer.config import parse_config

    return parse_config(
        {
            "version": 1,
            "name": "bench-doctor",
            "method": "sft",
            "model": {"name_or_path": model},
            "dataset": {"path": str(data)},
            "training": {"max_length": max_length},
        }
    )


def phase_plain(data: Path, model: str, max_length: int) -> dict[str, Any]:
    """One batched fast-tokenizer call over each row's text (turns joined, no template)."""
    from trainer.modeling import load_tokenizer, resolve_model_path

    cfg = _config(data, model, max_length)
    tokenizer = load_tokenizer(cfg, resolve_model_path(model, data.parent))
    with data.open(encoding="utf-8") as f:
        texts = ["\n".join(t["content"] for t in json.loads(line)["messages"]) for line in f]
    started, cpu = time.perf_counter(), cpu_seconds()
    ids = tokenizer(texts)["input_ids"]
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "tokens": sum(len(x) for x in ids),
        "peak_mb": peak_mb(),
    }


def phase_doctor(data: Path, model: str, max_length: int) -> dict[str, Any]:
    """The whole doctor, from reading the file (and importing TRL) to the report."""
    from trainer.doctor import run_doctor

    cfg = _config(data, model, max_length)
    started, cpu = time.perf_counter(), cpu_seconds()
    report = run_doctor(cfg, base_dir=data.parent, sample=5)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": peak_mb(),
        "children_peak_mb": children_peak_mb(),
        "examples": report.examples,
        "path": report.path,
        "checked": report.checked_against_trl,
        "findings": [f.kind for f in report.findings],
        "truncated_share": report.truncated_share,
        "timings": report.timings,
    }


PHASES = {"plain": phase_plain, "doctor": phase_doctor}


def _child(phase: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One phase in a fresh process, so that each one's peak memory is its own."""
    cmd = [sys.executable, __file__, "--phase", phase, "--data", str(data)]
    cmd += ["--model", args.model, "--max-length", str(args.max_length)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--model", default="builtin:tiny-llama")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.data, args.model, args.max_length)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "chat.jsonl"
        write_rows(data, args.rows)
        plain = _child("plain", data, args)
        doctor = _child("doctor", data, args)

    print(f"rows: {args.rows:,}  model: {args.model}  plain-pass tokens: {plain['tokens']:,}")
    print(
        f"plain fast-tokenizer pass: {plain['seconds']:8.2f} s   peak {plain['peak_mb']:6.0f} MB"
        f"   cpu {plain['cpu']:6.1f} s"
    )
    print(
        f"doctor (whole):            {doctor['seconds']:8.2f} s   peak {doctor['peak_mb']:6.0f} MB"
        f"   cpu {doctor['cpu']:6.1f} s (with its forked helpers; largest helper "
        f"{doctor['children_peak_mb']:.0f} MB)"
    )
    print(f"ratio doctor / plain:      {doctor['seconds'] / plain['seconds']:8.2f}  (target <= 2)")
    loaded = doctor["seconds"] - doctor["timings"]["load"]
    print(
        f"  without loading the tokenizer and TRL (the plain pass has its tokenizer loaded): "
        f"{loaded:.2f} s, "
        f"ratio {loaded / plain['seconds']:.2f}"
    )
    print(
        "  doctor stages: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in doctor["timings"].items())
        + " (the findings run beside load and marks)"
    )
    print(
        f"doctor: {doctor['examples']:,} examples, path {doctor['path']}, {doctor['checked']} "
        f"sample sequences checked against TRL, findings: {', '.join(doctor['findings'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
