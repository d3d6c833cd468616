"""A finished LoRA run on the demo model (builtin:tiny-llama) for the chat tests, trained once
per test session: 100 TRL steps on four question/answer pairs (about 5 s of training), enough
for the tuned model's greedy answers to be the data's answers while the random base model
babbles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.trainer.export_runs import run_config

_TRAINED: dict[str, ChatRun] = {}


@dataclass(frozen=True)
class ChatRun:
    folder: Path  # the run's working folder (dataset, config.json)
    config: dict[str, Any]
    config_path: Path
    output_dir: Path


def chat_config(folder: Path, model_dir: Path) -> dict[str, Any]:
    data = run_config(folder, model_dir)
    data["model"]["name_or_path"] = "builtin:tiny-llama"  # the demo's model, as users pick it
    data["name"] = "chat-demo"
    data["training"].update(max_steps=100, learning_rate=0.005)
    data["checkpoint"] = {"save_steps": 50}
    data["evaluation"] = {"strategy": "no"}
    return data


def trained_chat_run(root: Path, model_dir: Path) -> ChatRun:
    """Train the run under ``root`` (once per session: later calls get the same run)."""
    if "run" in _TRAINED:
        return _TRAINED["run"]
    import torch

    from trainer.config import parse_config
    from trainer.run import run

    torch.set_num_threads(1)
    folder = root / "chat-run"
    folder.mkdir(parents=True, exist_ok=True)
    data = chat_config(folder, model_dir)
    result = run(parse_config(data), "chat-job", base_dir=folder)
    assert result.exit_code == 0, result
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(data), encoding="utf-8")
    _TRAINED["run"] = ChatRun(folder, data, config_path, Path(data["output"]["output_dir"]))
    return _TRAINED["run"]


def store_job(store: Any, chat_run: ChatRun, status: str = "completed") -> Any:
    """The run as a finished job in ``store`` (what the app records for a local run)."""
    job = store.create_job(
        name="chat-demo",
        method="sft",
        model=chat_run.config["model"]["name_or_path"],
        config_json=json.dumps(chat_run.config),
        output_dir=str(chat_run.output_dir),
    )
    store.set_status(job.id, status)
    return store.require_job(job.id)
