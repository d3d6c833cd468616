"""Hub push against a stand-in for the Hub (tests/trainer/fake_hub.py: a real HTTP server on
127.0.0.1 speaking the part of the Hub API that huggingface_hub's create_repo/upload_folder use;
HF_ENDPOINT points the trainer at it). The Hub itself is the one thing here that cannot be real."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from tests.trainer.export_runs import train_lora  # noqa: E402
from tests.trainer.fake_hub import FakeHub  # noqa: E402
from trainer.config import parse_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MERGED_FILES = {
    "README.md",
    "loss.png",
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
}


@pytest.fixture(scope="module")
def lora_config(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return train_lora(tmp_path_factory.mktemp("hub-run"), tiny_model_dir)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    yield server
    server.close()


def _push(hub: FakeHub, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake"}
    env.pop("HF_HUB_OFFLINE")  # the stand-in is on 127.0.0.1; nothing else is reachable
    return subprocess.run(
        [sys.executable, "-m", "trainer", "export", "--config", str(config), *args],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _metric_events(out: Path) -> list[dict[str, Any]]:
    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [e["data"] for e in map(json.loads, lines) if e["kind"] == "metric"]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    rows = zlib.decompress(data[idat + 4 : idat + 4 + length])
    assert len(rows) == height * (1 + 3 * width)
    return width, height


def test_export_pushes_the_merged_model_privately_with_a_model_card(
    hub: FakeHub, lora_config: Path
) -> None:
    done = _push(hub, lora_config, "--hub", "alice/export-demo")
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["event"] == "done" and final["kind"] == "hub"
    assert final["repo"] == "alice/export-demo" and "/commit/" in final["url"]

    repo = hub.repos["alice/export-demo"]
    assert repo.visibility == "private"
    assert set(repo.files) == MERGED_FILES
    assert len(repo.commits) == 1 and "export-demo" in repo.commits[0]
    assert hub.unknown == []
    assert hub.tokens and set(hub.tokens) == {"hf_fake"}
    assert _png_size(repo.files["loss.png"]) == (640, 320)
    assert hub.metadata[-1]["license"] == "other"
    assert hub.metadata[-1]["tags"] == ["tunedeck", "sft", "lora"]

    card = repo.files["README.md"].decode("utf-8")
    cfg = json.loads(lora_config.read_text(encoding="utf-8"))
    data_file = Path(cfg["dataset"]["path"])
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert f"base_model: {json.dumps(cfg['model']['name_or_path'])}" in card
    assert "license: other" in card  # the tiny model states no license
    assert "method **sft**, adapter **lora**" in card
    assert f"- dataset: `{data_file}`" in card
    assert hashlib.sha256(data_file.read_bytes()).hexdigest() in card
    metrics = _metric_events(lora_config.parent / "out")
    evals = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    best_step, best = min(evals, key=lambda p: p[1])
    assert f"| eval_loss | {evals[-1][1]:.4g} | {best:.4f} (step {best_step}) |" in card
    last_train = [m["train_loss"] for m in metrics if "train_loss" in m][-1]
    assert f"| train_loss | {last_train:.4g} |" in card
    assert "Steps trained: 4." in card
    assert "![Loss: train in blue, eval in orange](loss.png)" in card
    assert 'AutoModelForCausalLM.from_pretrained("alice/export-demo")' in card
    config_block = card.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(config_block) == parse_config(cfg).model_dump(mode="json")


def test_adapter_only_public_push(hub: FakeHub, lora_config: Path) -> None:
    done = _push(hub, lora_config, "--hub", "alice/adapter", "--adapter-only", "--public")
    assert done.returncode == 0, done.stderr
    repo = hub.repos["alice/adapter"]
    assert repo.visibility == "public"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(repo.files)
    assert "model.safetensors" not in repo.files
    card = repo.files["README.md"].decode("utf-8")
    assert (
        "library_name: peft" in card and 'PeftModel.from_pretrained(base, "alice/adapter")' in card
    )


def test_a_refused_push_is_an_error_event_and_exit_1(lora_config: Path) -> None:
    hub = FakeHub().start()
    url = hub.url
    hub.close()  # nothing listens there any more
    dead = FakeHub()
    dead.url = url
    done = _push(dead, lora_config, "--hub", "alice/nowhere")
    assert done.returncode == 1
    error = json.loads(done.stdout.splitlines()[-1])
    assert error["event"] == "error" and "alice/nowhere" in error["message"]


def test_end_of_run_push_uses_the_same_push_and_card(
    hub: FakeHub, lora_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from trainer.artifacts import Artifacts, push_to_hub

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    cfg = json.loads(lora_config.read_text(encoding="utf-8"))
    cfg["output"].update(push_to_hub=True, hub_repo="alice/at-the-end")
    out = lora_config.parent / "out"
    repo = push_to_hub(parse_config(cfg), Artifacts(out, is_adapter=True))
    assert repo == "alice/at-the-end"
    pushed = hub.repos[repo]
    assert pushed.visibility == "private"
    assert "events.jsonl" not in pushed.files and not any("checkpoint" in f for f in pushed.files)
    assert {"adapter_model.safetensors", "README.md", "loss.png"} <= set(pushed.files)
    assert "library_name: peft" in pushed.files["README.md"].decode("utf-8")
