"""The command line, run as a user runs it: in a subprocess, from another folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def trainer_cli(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_schema_prints_the_json_schema_without_loading_torch(tmp_path: Path) -> None:
    done = trainer_cli("schema", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert {"method", "model", "training", "rlhf"} <= set(schema["properties"])
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, io, contextlib\n"
            "from trainer.__main__ import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['schema']) == 0\n"
            "print('torch' in sys.modules)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "False", probe.stderr


def test_a_bad_config_is_one_line_per_problem_and_exit_2(tmp_path: Path) -> None:
    bad = write_json(
        tmp_path / "bad.json",
        {"method": "kto", "training": {"max_length": 2, "learning_rat": 1}},
    )
    done = trainer_cli("--config", str(bad), "--execution-id", "x", cwd=tmp_path)
    assert done.returncode == 2
    assert sorted(done.stderr.strip().splitlines()) == [
        f"error: {bad}: training.learning_rat: unknown field; did you mean 'learning_rate'?",
        f"error: {bad}: training.max_length: Input should be greater than or equal to 8 (got 2)",
    ]
    assert "Traceback" not in done.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    done = trainer_cli("--config", "nope.json", "--execution-id", "x", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: nope.json: cannot read the config file: No such file or directory"
    )


def test_qlora_on_this_cpu_is_refused_with_the_reason(tmp_path: Path) -> None:
    cfg = write_json(
        tmp_path / "q.json",
        {"model": {"name_or_path": "builtin:tiny-llama"}, "adapter": {"kind": "qlora"}},
    )
    done = trainer_cli("--config", str(cfg), "--execution-id", "x", cwd=tmp_path)
    assert done.returncode == 2
    assert "adapter.kind: QLoRA needs a CUDA GPU and the bitsandbytes package" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unexpected_failure_prints_a_traceback_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello world"}\n' * 8)
    cfg = write_json(
        tmp_path / "c.json",
        {"method": "cpt", "model": {"name_or_path": str(broken)}, "dataset": {"path": str(data)}},
    )
    done = trainer_cli("--config", str(cfg), "--execution-id", "x", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: unexpected ")


def test_make_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainer.__main__ import main

    # in-process: the subprocess path is covered above, and importing torch again costs seconds
    assert main(["make-tiny-model", str(tmp_path / "m")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    assert (tmp_path / "m" / "tokenizer.json").is_file()


def test_validate_the_demo_preset_from_another_folder(tmp_path: Path) -> None:
    done = trainer_cli(
        "validate", "--config", str(REPO / "resources/presets/demo-sft.json"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "format: messages" in done.stdout
    assert "rows:" in done.stdout


def test_validate_reports_a_dataset_that_does_not_fit_the_method(tmp_path: Path) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                ]
            }
        )
        + "\n"
    )
    cfg = write_json(tmp_path / "c.json", {"method": "dpo", "dataset": {"path": str(data)}})
    done = trainer_cli("validate", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 2
    assert "error:" in done.stderr and "dpo" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_demo_preset_trains_in_under_a_minute_from_anywhere(tmp_path: Path) -> None:
    started = time.monotonic()
    done = trainer_cli(
        "--config",
        str(REPO / "resources/presets/demo-sft.json"),
        "--execution-id",
        "demo",
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "outputs" / "demo-sft"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == 200
    assert summary["last_loss"] < summary["first_loss"] / 2
    assert elapsed < 60, elapsed
