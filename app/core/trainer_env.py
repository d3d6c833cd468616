"""The trainer's own Python environment, which the installed app creates on request.

An installed Tunedeck carries no training stack (DESIGN.md §7): "Set up local training" makes a
separate environment (``uv venv``, or ``python -m venv`` where uv is missing), installs torch in
the build that suits the machine (CUDA where an NVIDIA driver is present, CPU otherwise; the
user can change it), then this version's trainer, checks it with the same probe as Settings'
"Check", and records its Python as ``Settings.trainer_python``: local runs, the RunPod bundle
and any other trainer-side subprocess use it from then on.

What is installed: this install's own ``tunedeck`` package (the trainer lives in it), from the
wheel a frozen build carries (``build_package.sh`` builds it from the same source tree, so the
trainer always matches the app) or, in a source checkout, from the checkout itself. It goes in
with ``--no-deps`` after an explicit list: the ``train`` extra plus what the trainer imports
outside it (pydantic), read from the same metadata. That keeps the desktop's own dependencies
(Qt alone is 230 MB) out of the trainer's environment.

Setting up again always starts from a cleared environment (``--clear``): a half-installed or
broken environment is repaired by the same button, and the package caches keep a repeat fast.
Every step's output goes to ``on_line`` and to a log file; ``cancel()`` stops the running step.
"""

from __future__ import annotations

import contextlib
import email.parser
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.core import paths
from app.core.trainer_python import PythonCheck, check_trainer_python, clean_environment

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
# What the trainer imports outside the ``train`` extra (the rest of the app's dependencies are
# the desktop's: Qt, aiohttp, keyring, ...).
TRAINER_BASE_PACKAGES = ("pydantic",)
ENV_FOLDER = "trainer-env"
LOG_NAME = "trainer-env-setup.log"
# Overrides for machines whose registry is not the public one (CI here: torch comes from the
# constraints file's pin in the default registry, not from the PyTorch index).
CONSTRAINTS_VARIABLE = "TUNEDECK_TRAINER_CONSTRAINTS"
TORCH_INDEX_VARIABLE = "TUNEDECK_TORCH_INDEX"
STOP_GRACE_S = 5.0
_NEW_PROCESS_GROUP: int = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows only

LineCallback = Callable[[str], None]
StepCallback = Callable[[int, int, str], None]


class SetupError(Exception):
    """The environment could not be planned (no Python to build it from, no trainer to install)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# ---- the torch build ------------------------------------------------------------------------


def nvidia_driver() -> str | None:
    """Why we think an NVIDIA driver is present (a line to show), or None."""
    if Path("/proc/driver/nvidia/version").exists():
        return "NVIDIA driver found (/proc/driver/nvidia)"
    smi = shutil.which("nvidia-smi")
    if smi:
        return f"NVIDIA driver found ({smi})"
    return None


@dataclass(frozen=True)
class TorchChoice:
    """Which torch to install: ``build`` is "cuda" or "cpu"; ``index_url`` None means the
    package registry's default torch."""

    build: str
    index_url: str | None
    reason: str

    def describe(self) -> str:
        where = self.index_url or "the package registry's default"
        return f"torch {self.build.upper()} build from {where} ({self.reason})"


def torch_index_url(build: str, platform: str = sys.platform) -> str | None:
    """Where each build lives: PyPI's Linux torch is the CUDA build and its Windows torch the CPU
    one; macOS has one build (CPU/MPS) on PyPI."""
    if platform == "darwin":
        return None
    if build == "cuda":
        return None if platform.startswith("linux") else CUDA_INDEX
    return CPU_INDEX


def choose_torch(
    build: str | None = None, *, driver: str | None = None, platform: str = sys.platform
) -> TorchChoice:
    """The build for this machine (or the one asked for), with the reason shown to the user.

    ``TUNEDECK_TORCH_INDEX`` (empty: the registry's default) replaces the index of either build.
    """
    if build is None:
        driver = nvidia_driver() if driver is None else driver
        if platform == "darwin":
            build, reason = "cpu", "macOS: one build, Metal (MPS) included"
        elif driver:
            build, reason = "cuda", driver
        else:
            build, reason = "cpu", "no NVIDIA driver found (no /proc/driver/nvidia, no nvidia-smi)"
    else:
        if build not in ("cuda", "cpu"):
            raise ValueError(f"torch build must be 'cuda' or 'cpu' (got {build!r})")
        reason = "chosen by you"
    index = torch_index_url(build, platform)
    override = os.environ.get(TORCH_INDEX_VARIABLE)
    if override is not None:
        index = override.strip() or None
        reason += f"; index from {TORCH_INDEX_VARIABLE}"
    return TorchChoice(build, index, reason)


# ---- what to install -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerSource:
    """The package that holds the trainer (a wheel or a source folder) and its requirements."""

    path: Path
    requirements: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "wheel" if self.path.suffix == ".whl" else "source tree"


def _requirement_name(requirement: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return found.group(1).lower().replace("_", "-") if found else ""


def requirements_from_wheel(wheel: Path) -> tuple[str, ...]:
    """The ``train`` extra and the trainer's base packages, from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    wanted: list[str] = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        marker = marker.replace("'", '"').replace(" ", "")
        if 'extra=="train"' in marker or (
            not marker and _requirement_name(requirement) in TRAINER_BASE_PACKAGES
        ):
            wanted.append(requirement.strip())
    return tuple(wanted)


def requirements_from_pyproject(pyproject: Path) -> tuple[str, ...]:
    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    base = [r for r in project["dependencies"] if _requirement_name(r) in TRAINER_BASE_PACKAGES]
    return (*base, *project["optional-dependencies"]["train"])


def bundled_wheel_dir() -> Path | None:
    """Where a frozen build keeps the trainer's wheel (None when not frozen)."""
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "trainer-wheel" if bundle else None


def trainer_source() -> TrainerSource:
    folder = bundled_wheel_dir()
    if folder is not None:
        wheels = sorted(folder.glob("tunedeck-*.whl"))
        if not wheels:
            raise SetupError(
                f"this build carries no trainer wheel in {folder}",
                "Reinstall Tunedeck from its installer.",
            )
        return TrainerSource(wheels[-1], requirements_from_wheel(wheels[-1]))
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise SetupError(
            f"no pyproject.toml at {root}: this Tunedeck is neither a frozen build nor a checkout",
            "Install the trainer yourself (pip install 'tunedeck[train]') and choose its Python.",
        )
    return TrainerSource(root, requirements_from_pyproject(pyproject))


# ---- the plan ------------------------------------------------------------------------------


def find_uv() -> str | None:
    """The uv binary: the one the ``uv`` package ships (the frozen build carries it), else PATH."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def find_base_python() -> str | None:
    """A Python to build a venv from: this one unless frozen, else python3/python on PATH."""
    if not getattr(sys, "frozen", False):
        return sys.executable
    return shutil.which("python3") or shutil.which("python")


def env_python(env_dir: Path, platform: str = sys.platform) -> Path:
    if platform == "win32":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def default_env_dir() -> Path:
    return paths.data_dir() / ENV_FOLDER


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class SetupPlan:
    """Everything the setup will do; ``steps()`` are the commands, in order."""

    env_dir: Path
    torch: TorchChoice
    source: TrainerSource
    tool: str  # "uv" or "venv"
    uv: str | None = None
    base_python: str | None = None
    constraints: Path | None = None

    @property
    def python(self) -> Path:
        return env_python(self.env_dir)

    def _install(self, *args: str) -> tuple[str, ...]:
        extra = ("-c", str(self.constraints)) if self.constraints else ()
        if self.tool == "uv":
            assert self.uv is not None
            return (self.uv, "pip", "install", "--python", str(self.python), *extra, *args)
        return (str(self.python), "-m", "pip", "install", "--progress-bar", "off", *extra, *args)

    def steps(self) -> list[Step]:
        if self.tool == "uv":
            assert self.uv is not None
            python = ("--python", self.base_python) if self.base_python else ()
            create = (self.uv, "venv", "--clear", "--seed", *python, str(self.env_dir))
        else:
            if not self.base_python:
                raise SetupError("no Python to create the environment with")
            create = (self.base_python, "-m", "venv", "--clear", str(self.env_dir))
        index = ("--index-url", self.torch.index_url) if self.torch.index_url else ()
        return [
            Step(f"Create the environment in {self.env_dir} ({self.tool})", create),
            Step(
                f"Install torch ({self.torch.build.upper()} build)",
                self._install("torch", *index),
            ),
            Step("Install the trainer's libraries", self._install(*self.source.requirements)),
            Step(
                f"Install this version's trainer ({self.source.kind})",
                self._install("--no-deps", "--force-reinstall", str(self.source.path)),
            ),
        ]

    def describe(self) -> str:
        return "\n".join(
            [
                f"Environment: {self.env_dir}",
                f"Made with: {self.tool}" + (f" ({self.uv})" if self.tool == "uv" else ""),
                f"From Python: {self.base_python or 'uv picks one (3.11 or newer)'}",
                f"Torch: {self.torch.describe()}",
                f"Trainer: {self.source.path} ({self.source.kind})",
            ]
            + ([f"Constraints: {self.constraints}"] if self.constraints else [])
        )


def make_plan(
    *,
    env_dir: Path | None = None,
    torch: TorchChoice | None = None,
    tool: str | None = None,
    base_python: str | None = None,
    constraints: Path | None = None,
    source: TrainerSource | None = None,
) -> SetupPlan:
    """The plan for this machine; any part can be given instead (the dialog and tests do)."""
    uv = find_uv()
    if tool is None:
        tool = "uv" if uv else "venv"
    if tool == "uv" and not uv:
        raise SetupError("uv is not available", "Choose 'python -m venv' instead.")
    if base_python is None:
        base_python = find_base_python()
        # a frozen app has no Python of its own: uv can find (or fetch) one by itself
        if base_python is None and tool == "uv":
            base_python = ">=3.11"
    if tool == "venv" and not base_python:
        raise SetupError(
            "no Python 3.11 or newer was found to create the environment with",
            "Install Python 3.11+ (python.org or your package manager), then try again.",
        )
    if constraints is None and os.environ.get(CONSTRAINTS_VARIABLE):
        constraints = Path(os.environ[CONSTRAINTS_VARIABLE])
    if constraints is not None:
        constraints = constraints.resolve()
    return SetupPlan(
        env_dir=Path(env_dir) if env_dir else default_env_dir(),
        torch=torch or choose_torch(),
        source=source or trainer_source(),
        tool=tool,
        uv=uv if tool == "uv" else None,
        base_python=base_python,
        constraints=constraints,
    )


# ---- running it ----------------------------------------------------------------------------


@dataclass
class SetupResult:
    """``status``: "ready", "failed" or "cancelled"; ``python`` the environment's interpreter."""

    status: str
    message: str
    python: str = ""
    check: PythonCheck | None = None
    log_path: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ready"


@dataclass
class TrainerEnvSetup:
    """Runs a plan step by step (blocking: call ``run`` on a worker thread); ``cancel()`` from
    any thread stops the running step and skips the rest."""

    plan: SetupPlan
    on_line: LineCallback = field(default=lambda _line: None)
    on_step: StepCallback = field(default=lambda _i, _n, _title: None)
    log_path: Path | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            _stop(proc)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def run(self) -> SetupResult:
        started = time.monotonic()
        log_path = self.log_path or paths.data_dir() / LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:

            def say(line: str) -> None:
                log.write(line + "\n")
                log.flush()
                self.on_line(line)

            say(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} setting up local training")
            for line in self.plan.describe().splitlines():
                say(line)
            result = self._run_steps(say)
            result.log_path = log_path
            result.seconds = time.monotonic() - started
            say(f"--- {result.status}: {result.message} ({result.seconds:.0f} s)")
        return result

    def _run_steps(self, say: LineCallback) -> SetupResult:
        try:
            steps = self.plan.steps()
        except SetupError as err:
            return SetupResult("failed", str(err))
        total = len(steps) + 1
        for number, step in enumerate(steps, 1):
            if self.cancelled:
                return SetupResult("cancelled", "cancelled; set up again to start over")
            self.on_step(number, total, step.title)
            say(f"[{number}/{total}] {step.title}")
            say("$ " + " ".join(step.argv))
            code = self._run_one(step.argv, say)
            if self.cancelled:
                return SetupResult(
                    "cancelled",
                    f"cancelled during '{step.title}'; set up again to start over",
                )
            if code != 0:
                return SetupResult(
                    "failed",
                    f"'{step.title}' failed (exit code {code}); the log above says why. Fix "
                    "the cause (network, disk space, the torch build) and set up again: it "
                    "starts from a clean environment.",
                )
        self.on_step(total, total, "Check the environment")
        say(f"[{total}/{total}] Check the environment")
        check = check_trainer_python(str(self.plan.python), timeout_s=120.0)
        say(check.message)
        if not check.ok:
            return SetupResult("failed", check.message, check=check)
        return SetupResult("ready", check.message, python=str(self.plan.python), check=check)

    def _run_one(self, argv: Sequence[str], say: LineCallback) -> int:
        env = clean_environment()
        env.pop("VIRTUAL_ENV", None)  # uv and pip must target the new environment only
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                # its own group, so that cancel stops pip's or uv's children too
                start_new_session=sys.platform != "win32",
                creationflags=_NEW_PROCESS_GROUP,
            )
        except OSError as err:
            say(f"cannot start {argv[0]}: {err.strerror or err}")
            return 127
        with self._lock:
            self._proc = proc
        if self.cancelled:  # cancel() came between the check and the start
            _stop(proc)
        assert proc.stdout is not None
        for raw in proc.stdout:
            say(raw.decode("utf-8", "replace").rstrip())
        code: int = proc.wait()
        with self._lock:
            self._proc = None
        return code


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the step's process group, then kill it after STOP_GRACE_S."""
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            proc.terminate()
        else:
            os.killpg(proc.pid, signal.SIGTERM)

    def finish() -> None:
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                if sys.platform == "win32":
                    proc.kill()
                else:
                    os.killpg(proc.pid, signal.SIGKILL)

    threading.Thread(target=finish, daemon=True).start()


def record_environment(python: str) -> Path:
    """Make ``python`` the training Python in the saved settings; the settings file's path."""
    from app.core.settings import load_settings, save_settings

    loaded = load_settings()
    settings = loaded.settings.model_copy(update={"trainer_python": python})
    return save_settings(settings, loaded.path)


def with_torch(plan: SetupPlan, build: str) -> SetupPlan:
    """The same plan with another torch build (the dialog's choice)."""
    return replace(plan, torch=choose_torch(build))
