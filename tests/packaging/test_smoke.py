"""`--version` and `--smoke-test` from a source checkout (make test-package runs the same flags
on the frozen folder and on the installed .deb)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import smoke
from app.version import app_version

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_of_both_commands() -> None:
    version = app_version()
    assert version and version != "unknown"
    gui = run("-m", "app.main", "--version")
    cli = run("-m", "app.cli", "--version")
    assert gui.returncode == cli.returncode == 0, gui.stderr + cli.stderr
    assert gui.stdout.startswith(f"tunedeck-gui {version} (Python package")
    assert cli.stdout.startswith(f"tunedeck {version} (Python package")


def test_the_smoke_test_passes_every_step_on_scratch_folders(tmp_path: Path) -> None:
    done = run("-m", "app.main", "--smoke-test")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line.split(" (")[0] for line in done.stdout.splitlines() if line.startswith("ok  ")]
    assert steps == [
        f"ok  {name}"
        for name in (
            "data files",
            "modules",
            "window",
            "charts",
            "core",
            "receiver",
            "store",
            "stop",
        )
    ]
    assert done.stdout.rstrip().endswith("smoke test passed")
    # it used scratch folders, never the user's (here: the test's) data folder
    assert not (tmp_path / "data").exists()


def test_a_failing_step_exits_non_zero_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing() -> str:
        raise smoke.SmokeFailure("/opt/tunedeck/_internal/resources/style.qss is missing")

    monkeypatch.setattr(smoke, "check_data_files", missing)
    assert smoke.run_smoke_test() == 1
    out = capsys.readouterr().out
    assert "smoke test FAILED: data files: /opt/tunedeck/_internal/resources/style.qss" in out
    assert "smoke test passed" not in out
    assert "TUNEDECK_DATA_DIR" in os.environ  # the test's own setting was put back
