"""A real finished LoRA run on the tiny model, for the export tests: a few TRL steps with a high
learning rate (so the adapter is far from a no-op), with eval, events.jsonl and run_summary.json
as the trainer leaves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Say hello.", "Hello world!"),
    ("Name a color.", "Blue is a color."),
    ("Count to three.", "One two three."),
]


def run_config(folder: Path, model_dir: Path, **output: Any) -> dict[str, Any]:
    data = folder / "chat.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in CHAT * 4
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return {
        "name": "export-demo",
        "method": "sft",
        "model": {"name_or_path": str(model_dir)},
        "dataset": {"path": str(data), "eval_fraction": 0.25},
        "adapter": {"kind": "lora"},
        "training": {
            "max_steps": 4,
            "max_length": 64,
            "per_device_train_batch_size": 4,
            "learning_rate": 0.05,
        },
        "evaluation": {"strategy": "steps", "eval_steps": 2},
        "logging": {"logging_steps": 1},
        "output": {"output_dir": str(folder / "out"), **output},
    }


def train_lora(folder: Path, model_dir: Path) -> Path:
    """Train the run in ``folder``; return the config file written next to it."""
    import torch

    from trainer.config import parse_config
    from trainer.run import run

    torch.set_num_threads(1)
    folder.mkdir(parents=True, exist_ok=True)
    data = run_config(folder, model_dir)
    result = run(parse_config(data), "export-job", base_dir=folder)
    assert result.exit_code == 0, result
    config = folder / "config.json"
    config.write_text(json.dumps(data), encoding="utf-8")
    return config
