"""The installers' inputs, read as the tools read them: the spec's excludes and data files,
the desktop entry, the AppStream metadata, the icons, the build's checker, and the workflow
(which cannot run here: pinned actions, explicit shells, `make package` on Linux)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import check_package  # noqa: E402

ML_STACK = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


def test_the_spec_excludes_the_ml_stack_and_carries_the_data_the_app_reads() -> None:
    spec = (REPO / "packaging" / "tunedeck.spec").read_text()
    excluded = re.search(r"ML_STACK = \[(.*?)\]", spec, re.DOTALL)
    assert excluded is not None
    assert set(ML_STACK) <= set(re.findall(r'"([\w.]+)"', excluded.group(1)))
    for data in (
        '"resources"',
        "app/core/receiver_openapi.json",
        "app/core/runpod/gpu_table.json",
        "app/core/runpod/pod_agent.py",
        'copy_metadata("tunedeck")',
        "find_uv_bin()",
        "trainer-wheel",
    ):
        assert data in spec, data
    assert 'name="tunedeck-gui"' in spec and 'name="tunedeck"' in spec


def test_the_desktop_entry() -> None:
    path = REPO / "packaging" / "linux" / "tunedeck.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read(path)
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "Tunedeck"
    assert desktop["Exec"].split()[0] == "tunedeck-gui" and desktop["Icon"] == "tunedeck"
    if shutil.which("desktop-file-validate"):
        done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_appstream_metadata() -> None:
    path = REPO / "packaging" / "linux" / "org.tunedeck.Tunedeck.metainfo.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == "org.tunedeck.Tunedeck"
    assert root.findtext("launchable") == "tunedeck.desktop"
    assert {b.text for b in root.iter("binary")} == {"tunedeck-gui", "tunedeck"}
    if shutil.which("appstreamcli"):
        done = subprocess.run(
            ["appstreamcli", "validate", "--no-net", "--pedantic", str(path)],
            capture_output=True,
            text=True,
        )
        assert "error" not in done.stdout.lower(), done.stdout


def test_the_icons_match_the_svg_sizes() -> None:
    from PySide6.QtGui import QImage

    icons = REPO / "resources" / "icons"
    assert (icons / "tunedeck.svg").read_text().lstrip().startswith("<svg")
    for size in (16, 32, 48, 64, 128, 256, 512):
        image = QImage(str(icons / f"tunedeck-{size}.png"))
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()


def test_the_checker_finds_the_ml_stack_and_the_size(tmp_path: Path) -> None:
    good = tmp_path / "good"
    (good / "_internal" / "resources" / "datasets").mkdir(parents=True)  # the app's own data
    (good / "_internal" / "app").mkdir()
    (good / "_internal" / "app" / "blob.bin").write_bytes(b"x" * 2_000_000)
    assert check_package.main([str(good), "--limit-mb", "300"]) == 0
    assert check_package.main([str(good), "--limit-mb", "1"]) == 1
    bad = tmp_path / "bad"
    (bad / "_internal" / "transformers").mkdir(parents=True)
    (bad / "_internal" / "trl-1.16.0.dist-info").mkdir()
    (bad / "_internal" / "torch" / "lib").mkdir(parents=True)
    (bad / "_internal" / "torch" / "lib" / "libtorch_cpu.so").write_bytes(b"")
    found = check_package.forbidden_files(bad)
    assert {"_internal/transformers", "_internal/trl-1.16.0.dist-info", "_internal/torch"} <= set(
        found
    )
    assert "_internal/torch/lib/libtorch_cpu.so" in found
    assert check_package.main([str(bad)]) == 1


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / "installers.yml").read_text())


def test_the_workflow_runs_on_tags_with_pinned_actions_and_explicit_shells(workflow: dict) -> None:
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads on: as True
    assert triggers["push"]["tags"] == ["v*"]
    assert set(workflow["jobs"]) == {"linux", "windows", "macos", "release"}
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@v\d+\.\d+\.\d+$", step["uses"]), (name, step["uses"])
            else:
                assert step.get("shell") in ("bash", "pwsh"), (name, step.get("name"))
    assert workflow["jobs"]["release"]["needs"] == ["linux", "windows", "macos"]


def test_the_workflow_builds_linux_with_exactly_make_package(workflow: dict) -> None:
    runs = [step.get("run", "") for step in workflow["jobs"]["linux"]["steps"]]
    assert any(run.strip().startswith("make package") for run in runs)
    # Windows and macOS run the same script that `make package` runs
    for job in ("windows", "macos"):
        text = " ".join(step.get("run", "") for step in workflow["jobs"][job]["steps"])
        assert "bash scripts/build_package.sh" in text and "--smoke-test" in text
    makefile = (REPO / "Makefile").read_text()
    assert "package:\n\tbash scripts/build_package.sh" in makefile
