"""The trainer's environment: the torch choice, what is installed, the runner (real
subprocesses: progress, log, failure, cancel, repair with a real uv), the environment the
trainer gets, and which Python a local run uses."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from scripted_plans import ScriptedPlan, scripted

from app.core import trainer_env
from app.core.launcher import LaunchError
from app.core.settings import Settings, load_settings, save_settings
from app.core.trainer_env import (
    CPU_INDEX,
    CUDA_INDEX,
    TorchChoice,
    TrainerEnvSetup,
    TrainerSource,
    choose_torch,
    make_plan,
    record_environment,
    requirements_from_pyproject,
    requirements_from_wheel,
    torch_index_url,
)
from app.core.trainer_python import clean_environment, launch_python

REPO = Path(__file__).resolve().parents[2]


# ---- torch ---------------------------------------------------------------------------------


def test_the_torch_build_follows_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(trainer_env.TORCH_INDEX_VARIABLE, raising=False)
    gpu = choose_torch(driver="NVIDIA driver found (/usr/bin/nvidia-smi)", platform="linux")
    assert (gpu.build, gpu.index_url) == ("cuda", None)  # PyPI's Linux torch is the CUDA build
    assert "nvidia-smi" in gpu.describe()
    cpu = choose_torch(driver="", platform="linux")
    assert (cpu.build, cpu.index_url) == ("cpu", CPU_INDEX)
    assert "no NVIDIA driver" in cpu.reason
    assert choose_torch(driver="", platform="darwin").index_url is None
    assert torch_index_url("cuda", "win32") == CUDA_INDEX
    assert torch_index_url("cpu", "win32") == CPU_INDEX
    chosen = choose_torch("cuda", platform="win32")
    assert (chosen.build, chosen.index_url, chosen.reason) == ("cuda", CUDA_INDEX, "chosen by you")
    with pytest.raises(ValueError, match="'cuda' or 'cpu'"):
        choose_torch("rocm")


def test_the_index_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(trainer_env.TORCH_INDEX_VARIABLE, "")
    assert choose_torch("cpu", platform="linux").index_url is None
    monkeypatch.setenv(trainer_env.TORCH_INDEX_VARIABLE, "https://mirror.example/torch")
    assert choose_torch(driver="", platform="linux").index_url == "https://mirror.example/torch"


def test_this_machine_has_no_nvidia_driver() -> None:
    # the CI machines have no GPU: the detection must say so (a GPU machine skips nothing: it
    # would see a reason naming what it found)
    found = trainer_env.nvidia_driver()
    has_gpu = Path("/proc/driver/nvidia/version").exists()
    assert (found is not None) == (has_gpu or bool(__import__("shutil").which("nvidia-smi")))


# ---- what is installed ---------------------------------------------------------------------


def test_the_trainer_requirements_leave_the_desktop_out() -> None:
    wanted = requirements_from_pyproject(REPO / "pyproject.toml")
    names = {trainer_env._requirement_name(r) for r in wanted}
    assert {"pydantic", "torch", "transformers", "trl", "peft", "datasets"} <= names
    assert not names & {"pyside6-essentials", "pyqtgraph", "aiohttp", "keyring", "uv"}


def test_requirements_from_a_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "tunedeck-9.9.9-py3-none-any.whl"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            "Name: tunedeck",
            "Version: 9.9.9",
            "Requires-Dist: pydantic>=2.7",
            "Requires-Dist: PySide6-Essentials<6.12,>=6.11.3",
            'Requires-Dist: torch>=2.4; extra == "train"',
            "Requires-Dist: trl<2,>=1.16; extra == 'train'",
            'Requires-Dist: pytest>=8; extra == "dev"',
            "",
        ]
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tunedeck-9.9.9.dist-info/METADATA", metadata)
    assert requirements_from_wheel(wheel) == ("pydantic>=2.7", "torch>=2.4", "trl<2,>=1.16")


def test_the_plan_installs_torch_first_then_the_trainer_without_its_desktop_deps(
    tmp_path: Path,
) -> None:
    source = TrainerSource(REPO, ("pydantic>=2.7", "torch>=2.4", "trl>=1.16"))
    torch = TorchChoice("cpu", CPU_INDEX, "test")
    pip = make_plan(
        env_dir=tmp_path / "env",
        torch=torch,
        tool="venv",
        base_python=sys.executable,
        constraints=REPO / "requirements" / "constraints.txt",
        source=source,
    )
    steps = [s.argv for s in pip.steps()]
    python = str(tmp_path / "env" / "bin" / "python")
    assert steps[0] == (sys.executable, "-m", "venv", "--clear", str(tmp_path / "env"))
    constraint = ("-c", str(REPO / "requirements" / "constraints.txt"))
    assert steps[1][:3] == (python, "-m", "pip") and steps[1][-3:] == (
        "torch",
        "--index-url",
        CPU_INDEX,
    )
    assert all(" ".join(constraint) in " ".join(s) for s in steps[1:])
    assert steps[2][-3:] == source.requirements
    assert steps[3][-3:] == ("--no-deps", "--force-reinstall", str(REPO))
    uv = make_plan(env_dir=tmp_path / "env", torch=torch, tool="uv", source=source)
    first, second = (s.argv for s in uv.steps()[:2])
    assert first[1:4] == ("venv", "--clear", "--seed") and first[-1] == str(tmp_path / "env")
    assert second[1:5] == ("pip", "install", "--python", python)
    assert "uv" in uv.describe() and "CPU" in uv.describe()


# ---- the runner, for real ------------------------------------------------------------------


def test_a_setup_reports_its_steps_and_lines_and_checks_the_result(tmp_path: Path) -> None:
    lines: list[str] = []
    steps: list[tuple[int, int, str]] = []
    setup = TrainerEnvSetup(
        scripted(tmp_path, "print('hello from one')", "print('two'); print('three')"),
        on_line=lines.append,
        on_step=lambda i, n, t: steps.append((i, n, t)),
        log_path=tmp_path / "setup.log",
    )
    result = setup.run()
    assert result.ok, result.message
    assert result.python == str(tmp_path / "env" / "bin" / "python")
    assert "ready to train" in result.message and result.check is not None
    assert steps == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "Check the environment")]
    assert "hello from one" in lines and "three" in lines
    log = (tmp_path / "setup.log").read_text()
    assert "hello from one" in log and "--- ready" in log


def test_a_failing_step_stops_the_setup_and_says_which(tmp_path: Path) -> None:
    plan = scripted(
        tmp_path, "print('fine')", "import sys; print('boom'); sys.exit(3)", "print('never')"
    )
    lines: list[str] = []
    result = TrainerEnvSetup(plan, on_line=lines.append, log_path=tmp_path / "l.log").run()
    assert result.status == "failed"
    assert "'step 2' failed (exit code 3)" in result.message
    assert "boom" in lines and "never" not in lines


def test_a_setup_is_cancelled_mid_step_and_can_be_retried(tmp_path: Path) -> None:
    plan = scripted(tmp_path, "import time; print('waiting', flush=True); time.sleep(60)")
    lines: list[str] = []
    setup = TrainerEnvSetup(plan, on_line=lines.append, log_path=tmp_path / "l.log")
    outcome: list[trainer_env.SetupResult] = []
    import threading

    worker = threading.Thread(target=lambda: outcome.append(setup.run()))
    started = time.monotonic()
    worker.start()
    deadline = time.monotonic() + 20
    while "waiting" not in lines and time.monotonic() < deadline:
        time.sleep(0.05)
    setup.cancel()
    worker.join(20)
    assert not worker.is_alive() and time.monotonic() - started < 20
    assert outcome[0].status == "cancelled" and "step 1" in outcome[0].message
    retried = TrainerEnvSetup(scripted(tmp_path, "print('again')"), log_path=tmp_path / "l.log")
    assert retried.run().ok


def test_setting_up_again_repairs_a_broken_environment(tmp_path: Path) -> None:
    """Real uv: an environment whose interpreter was deleted is created afresh."""
    uv = trainer_env.find_uv()
    assert uv, "uv is a dependency of Tunedeck: it must be installed"
    env = tmp_path / "env"
    plan = make_plan(env_dir=env, tool="uv", source=TrainerSource(REPO, ()))
    create = plan.steps()[0]
    broken = subprocess.run(create.argv, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 0, broken.stderr
    (env / "bin" / "python").unlink()
    (env / "lib").rename(tmp_path / "lost-lib")
    repair = ScriptedPlan(
        env_dir=env, torch=plan.torch, source=plan.source, tool="uv", uv=uv, scripted=(create,)
    )
    result = TrainerEnvSetup(repair, log_path=tmp_path / "l.log").run()
    # the environment works again; the check then says what it still lacks (no torch installed)
    done = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import pip, sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == str(env), done.stderr
    assert result.status == "failed" and "lacks torch" in result.message


# ---- the trainer's environment variables, and which Python runs ----------------------------


def test_the_trainer_never_inherits_the_frozen_apps_variables() -> None:
    parent = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LD_LIBRARY_PATH": "/opt/tunedeck/_internal",
        "LD_LIBRARY_PATH_ORIG": "/usr/local/cuda/lib64",
        "PYTHONHOME": "/opt/tunedeck/_internal",
        "PYTHONPATH": "/opt/tunedeck/_internal/base_library.zip",
        "QT_PLUGIN_PATH": "/opt/tunedeck/_internal/PySide6/Qt/plugins",
        "QT_QPA_PLATFORM": "offscreen",
        "QML2_IMPORT_PATH": "/opt/tunedeck/_internal/PySide6/Qt/qml",
        "_PYI_APPLICATION_HOME_DIR": "/opt/tunedeck/_internal",
        "_PYI_PARENT_PROCESS_LEVEL": "1",
        "_MEIPASS2": "/tmp/_MEI123",
    }
    env = clean_environment(parent)
    assert env["LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64"  # the user's own, given back
    for name in parent:
        if name not in ("PATH", "HOME", "LD_LIBRARY_PATH"):
            assert name not in env, name
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/home/me"


def test_a_recorded_environment_is_what_local_runs_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_settings(Settings(trainer_python="", receiver_port=9000))
    assert launch_python("/given/python") == "/given/python"
    assert launch_python() == sys.executable  # a checkout with no setting: this interpreter
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(LaunchError, match="no training environment") as refused:
        launch_python()
    assert "setup-training" in refused.value.hint
    path = record_environment(str(tmp_path / "env" / "bin" / "python"))
    loaded = load_settings(path).settings
    assert loaded.trainer_python == str(tmp_path / "env" / "bin" / "python")
    assert loaded.receiver_port == 9000  # the rest of the settings kept
    assert launch_python() == loaded.trainer_python


def test_a_frozen_app_installs_its_bundled_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    with pytest.raises(trainer_env.SetupError, match="no trainer wheel"):
        trainer_env.trainer_source()
    (tmp_path / "trainer-wheel").mkdir()
    wheel = tmp_path / "trainer-wheel" / "tunedeck-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "tunedeck-0.1.0.dist-info/METADATA",
            'Name: tunedeck\nRequires-Dist: pydantic>=2\nRequires-Dist: torch; extra == "train"\n',
        )
    source = trainer_env.trainer_source()
    assert (source.path, source.kind, source.requirements) == (
        wheel,
        "wheel",
        ("pydantic>=2", "torch"),
    )


def test_an_installed_app_without_an_environment_refuses_to_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import json

    from app.core.launcher import create_job_for
    from app.core.launcher_local import LocalLauncher
    from app.core.store import Store
    from trainer.config import parse_config

    data = json.loads((REPO / "resources" / "presets" / "demo-sft.json").read_text())
    cfg = parse_config(data)
    with Store(tmp_path / "s.sqlite3") as store:
        job = create_job_for(store, cfg)
        launcher = LocalLauncher(store, base_dir=tmp_path)  # python: this (frozen) executable
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        with pytest.raises(LaunchError, match="no training environment") as refused:
            asyncio.run(launcher.start(job, cfg))
        assert "Set up local training" in refused.value.hint
        assert store.require_job(job.id).status == "queued" and job.pid is None
