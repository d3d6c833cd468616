"""The bundled demo datasets: current with their generator, small, each its own format, and each
preset's dataset fits the preset's method."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from trainer.config import load_config
from trainer.data import inspect_dataset

FORMAT_OF = {
    "demo-chat.jsonl": "messages",
    "demo-sharegpt.jsonl": "sharegpt",
    "demo-alpaca.jsonl": "alpaca",
    "demo-text.jsonl": "text",
    "demo-prompt-completion.jsonl": "prompt_completion",
    "demo-prompts.jsonl": "prompt",
    "demo-preference.jsonl": "preference",
    "demo-kto.jsonl": "kto",
}


def generator(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_demo_datasets", repo_root / "scripts" / "make_demo_datasets.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_files_match_their_generator(repo_root: Path, tmp_path: Path) -> None:
    make = generator(repo_root)
    assert set(make.FILES) == set(FORMAT_OF)
    assert make.main(["--check"]) == 0, "run scripts/make_demo_datasets.py"
    # and the generator writes what is committed
    assert make.main(["--out", str(tmp_path)]) == 0
    for name in FORMAT_OF:
        committed = (repo_root / "resources/datasets" / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == committed


@pytest.mark.parametrize(("name", "fmt"), sorted(FORMAT_OF.items()))
def test_each_demo_file_is_small_and_its_format(repo_root: Path, name: str, fmt: str) -> None:
    path = repo_root / "resources/datasets" / name
    assert path.stat().st_size < 30_000
    report = inspect_dataset(str(path))
    assert report.ok, report.problems
    assert report.fmt == fmt and report.num_rows >= 32


def test_demo_chat_has_varied_short_answers(repo_root: Path) -> None:
    lines = (repo_root / "resources/datasets/demo-chat.jsonl").read_text().splitlines()
    answers = [json.loads(line)["messages"][-1]["content"] for line in lines]
    assert len(answers) == 64 and len(set(answers)) == 64
    assert max(len(a) for a in answers) < 60


def test_demo_preference_pairs_differ_clearly(repo_root: Path) -> None:
    lines = (repo_root / "resources/datasets/demo-preference.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 48
    for row in rows:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert chosen != rejected and not chosen.startswith(rejected)


@pytest.mark.parametrize(
    "preset",
    sorted(p.name for p in (Path(__file__).parents[2] / "resources/presets").glob("*.json")),
)
def test_every_preset_dataset_fits_its_method(repo_root: Path, preset: str) -> None:
    cfg = load_config(repo_root / "resources/presets" / preset)
    report = inspect_dataset(
        cfg.dataset.path,
        cfg.method,
        cfg.dataset.format,
        base_dir=repo_root,
        has_reward_model=bool(cfg.rlhf.reward_model or cfg.rlhf.reward_dataset),
    )
    assert report.ok, (preset, report.problems)
