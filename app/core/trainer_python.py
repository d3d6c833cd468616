"""Which Python runs trainer work, and whether it can.

``launch_python`` is the one rule for which interpreter runs ``python -m trainer`` (local runs,
the dataset doctor, chat sessions, exports; the CLI and the GUI alike). An installed (frozen)
Tunedeck is not a Python: without a training environment it raises the one LaunchError that
says how to set one up, instead of starting itself as the trainer.

The GUI process must never import torch and friends, so the running interpreter is inspected
with ``importlib.util.find_spec`` (finds a package without importing it) and any other one is
asked in a subprocess with a time limit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.contract import CONTRACT_ENV_VARIABLES

if TYPE_CHECKING:
    from app.core.launcher import LaunchError

# What a trainer environment must be able to import.
TRAINER_PACKAGES: tuple[str, ...] = ("torch", "transformers", "trl", "peft", "datasets")
INSTALL_HINT = "pip install 'tunedeck[train]'"
CHECK_TIMEOUT_S = 30.0
# A frozen app points these at its own folder; a trainer must use its own Python's.
LEAKY_VARIABLES = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "PYTHONHOME", "PYTHONPATH")
# ...and these: Qt's (the frozen app's plugin paths; the trainer has no Qt) and PyInstaller's
# own bookkeeping (_PYI_*, _MEIPASS2), which would confuse a frozen program started by the trainer.
LEAKY_PREFIXES = ("QT_", "QML_", "QML2_", "_PYI_", "_MEIPASS")
# A key the user exported for their own scripts must not reach a trainer: no trainer needs it
# (DESIGN.md §5), and a trainer's environment can end up in its log or on a pod.
ACCOUNT_SECRETS = ("RUNPOD_API_KEY",)
# What an installed Tunedeck without a training environment says, wherever trainer work starts.
NO_ENVIRONMENT = (
    "no training environment is set up: this installed Tunedeck has no torch of its own"
)
SETUP_HINT = (
    "Set one up with Settings ▸ Training environment ▸ Set up local training… (or run "
    "`tunedeck setup-training`; the command line also takes --python with a Python that has "
    "the trainer installed)."
)

# Runs inside the candidate interpreter: find (not import) each package, report versions cheaply.
_PROBE = """
import importlib.metadata, importlib.util, json, sys
names = json.loads(sys.argv[1])
found = {}
for name in names:
    if importlib.util.find_spec(name) is None:
        found[name] = None
        continue
    try:
        found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        found[name] = "unknown"
print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                  "packages": found}))
"""


def missing_here() -> list[str]:
    """Trainer packages the running interpreter lacks (nothing is imported)."""
    return [name for name in TRAINER_PACKAGES if importlib.util.find_spec(name) is None]


def detect_trainer_python() -> str:
    """The running interpreter if it has the trainer packages, else '' (none chosen yet)."""
    return sys.executable if not missing_here() else ""


def trainer_python_message(path: str) -> str | None:
    """What to tell the user when no training environment is set; None when one is."""
    if path:
        return None
    if _frozen():
        return f"{NO_ENVIRONMENT[0].upper()}{NO_ENVIRONMENT[1:]}. {SETUP_HINT}"
    return (
        "No training environment is set: the Python that runs Tunedeck lacks "
        f"{', '.join(missing_here()) or 'the trainer packages'}. Choose a Python that has them "
        f"under Settings → Training environment, or install them with: {INSTALL_HINT}."
    )


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def no_training_environment() -> LaunchError:
    """The error every entry point raises (and shows) when a frozen app has no trainer Python."""
    from app.core.launcher import LaunchError  # the launchers' import chain, on first use

    return LaunchError(NO_ENVIRONMENT, SETUP_HINT)


def launch_python(chosen: str | None = None, configured: str | None = None) -> str:
    """The Python that runs trainer work: ``chosen`` (``--python``), else ``configured``
    (``Settings.trainer_python``; None: read it from the saved settings, '': none set), else,
    in a source checkout, this interpreter.

    A frozen app is not a Python: when the answer would be its own executable it raises
    ``no_training_environment()`` (LaunchError with the setup hint) instead. Callers that hold
    settings in memory (the running app) pass ``configured``; the rest read the saved file.
    """
    python = chosen or (_saved_trainer_python() if configured is None else configured)
    python = python or sys.executable
    if _frozen() and python == sys.executable:
        raise no_training_environment()
    return python


def _saved_trainer_python() -> str:
    from app.core.settings import load_settings  # settings imports this module

    return load_settings().settings.trainer_python


@dataclass(frozen=True)
class PythonCheck:
    """The outcome of asking an interpreter what it has."""

    ok: bool
    message: str
    python_version: str = ""
    packages: dict[str, str | None] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [name for name, version in self.packages.items() if version is None]


def check_trainer_python(path: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> PythonCheck:
    """Run ``path`` and report whether it has every trainer package (blocking; use a thread)."""
    if not path.strip():
        return PythonCheck(False, trainer_python_message("") or "No Python chosen.")
    exe = Path(path.strip()).expanduser()
    if not exe.is_file():
        return PythonCheck(False, f"{exe} does not exist or is not a file. Choose a Python.")
    if not os.access(exe, os.X_OK):
        return PythonCheck(False, f"{exe} is not executable. Choose a Python interpreter.")
    try:
        done = subprocess.run(
            [str(exe), "-I", "-c", _PROBE, json.dumps(list(TRAINER_PACKAGES))],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=clean_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return PythonCheck(False, f"{exe} did not answer within {timeout_s:g} s.")
    except OSError as exc:
        return PythonCheck(False, f"{exe} could not be started ({exc.strerror or exc}).")
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        packages = {str(k): v for k, v in report["packages"].items()}
        version = str(report["python"])
    except (IndexError, KeyError, TypeError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return PythonCheck(False, f"{exe} is not a working Python ({tail[0]}).")
    missing = [name for name, v in packages.items() if v is None]
    if missing:
        return PythonCheck(
            False,
            f"Python {version} at {exe} lacks {', '.join(missing)}. Install them into it "
            f"({exe} -m {INSTALL_HINT}) or choose another Python.",
            version,
            packages,
        )
    found = ", ".join(f"{name} {packages[name]}" for name in TRAINER_PACKAGES)
    return PythonCheck(True, f"Python {version} with {found}: ready to train.", version, packages)


def clean_environment(parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment another Python gets: the Settings "Check" probes it and every local run
    starts from it (then adds the contract's variables), so both see the same one.

    ``parent`` (default: this process's environment) without library paths that would point
    another Python at the wrong libraries (a frozen app sets LD_LIBRARY_PATH to its own folder,
    NOTES.md Packaging), and without contract variables the parent itself may have been given.
    """
    parent = os.environ if parent is None else parent
    env = {
        k: v
        for k, v in parent.items()
        if k not in LEAKY_VARIABLES and not k.startswith(LEAKY_PREFIXES)
    }
    for name in (*CONTRACT_ENV_VARIABLES, *ACCOUNT_SECRETS):
        env.pop(name, None)
    # PyInstaller keeps the user's own value here; give that back
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):
        original = parent.get(f"{name}_ORIG")
        if original:
            env[name] = original
        env.pop(f"{name}_ORIG", None)
    env["PYTHONUNBUFFERED"] = "1"  # log lines as they are written, not at exit
    return env
