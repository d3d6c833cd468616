"""Plans whose commands are given: the runner and its subprocesses are real, the steps quick."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from app.core.trainer_env import SetupPlan, Step, TorchChoice, TrainerSource

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ScriptedPlan(SetupPlan):
    """A plan whose commands are given: the runner is real, the steps are quick."""

    scripted: tuple[Step, ...] = ()

    def steps(self) -> list[Step]:
        return list(self.scripted)


def scripted(tmp_path: Path, *commands: str, python: str = sys.executable) -> ScriptedPlan:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True, exist_ok=True)
    link = env / "bin" / "python"
    if not link.exists():
        # this interpreter has the trainer packages, so the check passes (a wrapper, not a
        # symlink: a venv's Python finds its packages from where it was started)
        link.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
        link.chmod(0o755)
    return ScriptedPlan(
        env_dir=env,
        torch=TorchChoice("cpu", None, "test"),
        source=TrainerSource(REPO, ()),
        tool="venv",
        base_python=sys.executable,
        scripted=tuple(
            Step(f"step {i}", (sys.executable, "-c", code)) for i, code in enumerate(commands, 1)
        ),
    )
