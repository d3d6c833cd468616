"""The whole estimate against torch.cuda.max_memory_allocated of a real run (needs a CUDA GPU).

SmolLM2-135M (built in) and a ~0.5B model (``TUNEDECK_GPU_TEST_MODEL``: a local folder, or a
Hub id already in the Hugging Face cache, since the suite runs with HF_HUB_OFFLINE=1; default
Qwen/Qwen2.5-0.5B-Instruct: ``huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct`` once on the
GPU machine), LoRA and full, SFT and DPO, trained for
a few steps by the trainer's own ``run`` in this process with rows long enough that every batch
reaches ``max_length``. The estimate must be within 15% of the measurement and never below it
by more than 5%.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

MODELS = [
    "builtin:smollm2-135m-instruct",
    os.environ.get("TUNEDECK_GPU_TEST_MODEL", "Qwen/Qwen2.5-0.5B-Instruct"),
]
WORDS = "the quick brown fox jumps over the lazy dog while the model learns to answer "


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _dataset(folder: Path, method: str) -> Path:
    """Rows far longer than max_length, so every sequence is cut to it."""
    long = WORDS * 60
    path = folder / f"{method}.jsonl"
    rows: list[dict[str, Any]] = []
    for i in range(64):
        if method == "dpo":
            rows.append({"prompt": f"{i} {long}", "chosen": long, "rejected": long[::-1]})
        else:
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": f"{i} {long}"},
                        {"role": "assistant", "content": long},
                    ]
                }
            )
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU (gpu marker)")
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", ["sft", "dpo"])
@pytest.mark.parametrize("kind", ["lora", "full"])
def test_estimate_matches_the_measured_peak(
    tmp_path: Path, model: str, method: str, kind: str
) -> None:
    import torch

    from trainer.config import parse_config
    from trainer.planner import Hardware, make_plan
    from trainer.run import run

    cfg = parse_config(
        {
            "name": f"gpu-{method}-{kind}",
            "method": method,
            "model": {"name_or_path": model},
            "dataset": {"path": str(_dataset(tmp_path, method)), "eval_fraction": 0.0},
            "adapter": {"kind": kind},
            "training": {
                "max_steps": 3,
                "per_device_train_batch_size": 4,
                "max_length": 512,
            },
            "logging": {"logging_steps": 1},
            "checkpoint": {"save_strategy": "no"},
            "runtime": {"device": "cuda"},
            "output": {"output_dir": str(tmp_path / "out")},
        }
    )
    plan = make_plan(cfg, base_dir=tmp_path, local=[])
    estimate = plan.estimate
    assert (estimate.weights_dtype, estimate.seq_len) == ("bfloat16", 512)
    assert Hardware().device == "cuda"

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    result = run(cfg, "gpu-test", base_dir=tmp_path)
    assert result.exit_code == 0
    measured = torch.cuda.max_memory_allocated()
    ratio = estimate.peak_bytes / measured
    detail = ", ".join(f"{p.key}={p.bytes / 2**30:.2f}" for p in estimate.parts)
    assert 0.95 <= ratio <= 1.15, (
        f"estimate {estimate.peak_bytes / 2**30:.2f} GiB vs measured {measured / 2**30:.2f} GiB "
        f"(ratio {ratio:.3f}; {detail})"
    )
