"""For real: `tunedeck setup-training` builds a trainer environment from the package registry
(pip, torch from the constraints file: on these machines the CPU wheel lies on disk), records
it, and `tunedeck run` trains the demo with it through the local launcher. make test-package
does the same from the installed (frozen) app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.settings import load_settings
from app.core.store import Store

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_new_trainer_environment_trains_the_demo(tmp_path: Path) -> None:
    env = tmp_path / "trainer-env"
    setup = cli(
        "setup-training",
        "--tool",
        "venv",
        "--torch",
        "cpu",
        "--torch-index",
        "",
        "--constraints",
        str(REPO / "requirements" / "constraints.txt"),
        "--env",
        str(env),
        cwd=tmp_path,
        timeout=900,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    python = env / "bin" / "python"
    assert "[5/5] Check the environment" in setup.stdout and "ready to train" in setup.stdout
    assert load_settings().settings.trainer_python == str(python)
    # the trainer and its stack are there, the desktop's libraries are not
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, trainer, torch; "
            "print(trainer.__file__, torch.__version__, u.find_spec('PySide6') is None)",
        ],
        cwd=tmp_path,  # not the checkout: its trainer/ would shadow the installed one
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    where, torch_version, no_qt = probe.stdout.split()
    assert where.startswith(str(env)) and torch_version.endswith("+cpu") and no_qt == "True"

    cfg = json.loads((REPO / "resources" / "presets" / "demo-sft.json").read_text())
    cfg["dataset"]["path"] = str(REPO / cfg["dataset"]["path"])
    cfg["output"]["output_dir"] = str(tmp_path / "outputs" / "{name}")
    cfg["training"]["max_steps"] = 12
    (tmp_path / "demo.json").write_text(json.dumps(cfg))
    run = cli("run", str(tmp_path / "demo.json"), cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    with Store() as store:
        [job] = store.list_jobs()
        points = store.metrics(job.id)
    assert job.status == "completed"
    assert max(p["step"] for p in points if "train_loss" in p) == 12
