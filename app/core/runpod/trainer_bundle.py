"""The trainer package a pod receives: this install's ``trainer/`` sources and pinned requirements.

A wheel of the whole project would drag the desktop's dependencies (PySide6 and friends) onto the
pod, so the pod gets a tar.gz of the ``trainer`` package alone (the agent unpacks it onto the
trainer's PYTHONPATH) and the list of third-party distributions the trainer uses, each pinned to
the version installed in the training environment here: what was tested here is what runs there.

torch is the exception: the pod image brings a CUDA build of it (``bootstrap.DEFAULT_IMAGE``) and
pinning the local one would replace it with a multi-GB download, so torch is only held to the
same major version.

The archive is deterministic (sorted members, zero mtimes and owners), so its sha256 names its
content, and it is cached under the cache folder until the sources or the versions change.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core import paths

BUNDLE_NAME = "trainer.tar.gz"
# Used by the trainer but never imported by name in its sources (started with `python -m`).
RUN_BY_NAME = ("accelerate",)
# Brought by the pod image; held to the major version only (see the module docstring).
IMAGE_PROVIDED = ("torch",)
PROBE_TIMEOUT_S = 60.0

# Runs in the training Python: where its trainer package lies, and the distribution (with its
# version) behind each module name given. Asked there, not here: a frozen app has neither.
_ENVIRONMENT_PROBE = """
import importlib.metadata as m, importlib.util, json, sys
spec = importlib.util.find_spec("trainer")
places = list(spec.submodule_search_locations or []) if spec else []
by_module = m.packages_distributions()
versions = {}
for module in json.loads(sys.argv[1]):
    for dist in by_module.get(module, [module]):
        try:
            versions[dist] = m.version(dist)
        except m.PackageNotFoundError:
            versions[dist] = None
print(json.dumps({"trainer": places[0] if places else None, "versions": versions}))
"""


class BundleError(Exception):
    """The trainer cannot be packaged (sources or its training environment missing)."""


@dataclass(frozen=True)
class TrainerBundle:
    path: Path  # the cached trainer.tar.gz
    sha256: str
    size: int
    requirements: tuple[str, ...]  # pinned specs for the agent's /start


def probe_environment(python: str | None, modules: list[str]) -> dict[str, Any]:
    """Ask the training Python (None: this one) where its trainer is and what it has installed."""
    result = subprocess.run(
        [python or sys.executable, "-c", _ENVIRONMENT_PROBE, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise BundleError(
            f"the training Python ({python or sys.executable}) could not report its packages: "
            + (result.stderr.strip().splitlines() or ["no output"])[-1]
        )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def trainer_source_dir(python: str | None = None) -> Path:
    """The ``trainer`` package's folder: this app's own when its sources are on disk (so the pod
    runs the schema this app wrote the config with), else the training Python's (frozen app)."""
    spec = importlib.util.find_spec("trainer")
    for place in (spec.submodule_search_locations or []) if spec else []:
        if (Path(place) / "__main__.py").is_file():
            return Path(place)
    found = probe_environment(python, [])["trainer"]
    if not found or not (Path(found) / "__main__.py").is_file():
        raise BundleError(
            "no trainer sources to send to the pod: install 'tunedeck[train]' in the training "
            "environment (Settings → Training environment)"
        )
    return Path(found)


def source_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".jinja")
    )


def imported_modules(files: list[Path]) -> list[str]:
    """Third-party top-level modules the trainer imports (inside functions too), plus those it
    runs by name."""
    modules: set[str] = set(RUN_BY_NAME)
    for path in files:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return sorted(modules - set(sys.stdlib_module_names) - {"trainer", "__future__"})


def pinned_requirements(versions: dict[str, str | None]) -> list[str]:
    missing = sorted(name for name, version in versions.items() if version is None)
    if missing:
        raise BundleError(
            "the training environment lacks " + ", ".join(missing) + ": install "
            "'tunedeck[train]' there (Settings → Training environment) before a RunPod run"
        )
    specs = []
    for name, version in sorted(versions.items(), key=lambda item: item[0].lower()):
        release = re.split(r"[+]", str(version))[0]  # a local build tag (+cpu) is not on PyPI
        if name in IMAGE_PROVIDED:
            major = int(release.split(".")[0])
            specs.append(f"{name}>={major},<{major + 1}")
        else:
            specs.append(f"{name}=={release}")
    return specs


def _archive(root: Path, files: list[Path]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo("trainer/" + path.relative_to(root).as_posix())
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def build_trainer_bundle(python: str | None = None, *, cache: Path | None = None) -> TrainerBundle:
    """The trainer archive and the requirements pinned to what ``python`` (the training
    environment; None: this interpreter) has installed; the archive is cached by content."""
    root = trainer_source_dir(python)
    files = source_files(root)
    versions = probe_environment(python, imported_modules(files))["versions"]
    requirements = pinned_requirements(versions)
    key = hashlib.sha256(json.dumps(requirements).encode())
    for path in files:
        key.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    folder = cache or paths.cache_dir() / "runpod"
    target = folder / f"trainer-{key.hexdigest()[:16]}.tar.gz"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")  # builds may race
        partial.write_bytes(_archive(root, files))
        partial.replace(target)
    data = target.read_bytes()
    return TrainerBundle(target, hashlib.sha256(data).hexdigest(), len(data), tuple(requirements))
