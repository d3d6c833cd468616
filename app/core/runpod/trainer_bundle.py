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
import importlib.metadata
import importlib.util
import io
import json
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from app.core import paths

BUNDLE_NAME = "trainer.tar.gz"
# Used by the trainer but never imported by name in its sources (started with `python -m`).
RUN_BY_NAME = ("accelerate",)
# Brought by the pod image; held to the major version only (see the module docstring).
IMAGE_PROVIDED = ("torch",)
PROBE_TIMEOUT_S = 60.0

_VERSIONS_PROBE = """
import importlib.metadata as m, json, sys
found = {}
for name in json.loads(sys.argv[1]):
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


class BundleError(Exception):
    """The trainer cannot be packaged (sources or its training environment missing)."""


@dataclass(frozen=True)
class TrainerBundle:
    path: Path  # the cached trainer.tar.gz
    sha256: str
    size: int
    requirements: tuple[str, ...]  # pinned specs for the agent's /start


def trainer_source_dir() -> Path:
    """The folder of the ``trainer`` package this app runs with (found, not imported)."""
    spec = importlib.util.find_spec("trainer")
    if spec is None or not spec.submodule_search_locations:
        raise BundleError("the trainer package is not installed with this app")
    return Path(next(iter(spec.submodule_search_locations)))


def source_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".jinja")
    )


def imported_distributions(files: list[Path]) -> list[str]:
    """Third-party distributions whose modules the trainer imports (inside functions too)."""
    modules: set[str] = set()
    for path in files:
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"trainer", "__future__"}
    by_module = importlib.metadata.packages_distributions()
    names = {dist for module in modules for dist in by_module.get(module, [module])}
    return sorted(names | set(RUN_BY_NAME), key=str.lower)


def installed_versions(names: list[str], python: str | None = None) -> dict[str, str | None]:
    """Versions of ``names`` in the training environment (``python``; None: this process)."""
    if python is None or Path(python).resolve() == Path(sys.executable).resolve():
        found: dict[str, str | None] = {}
        for name in names:
            try:
                found[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                found[name] = None
        return found
    result = subprocess.run(
        [python, "-c", _VERSIONS_PROBE, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise BundleError(f"{python} could not report its packages: {result.stderr.strip()}")
    answer: dict[str, str | None] = json.loads(result.stdout)
    return answer


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
    """The trainer archive and its pinned requirements, built once per content and cached."""
    root = trainer_source_dir()
    files = source_files(root)
    requirements = pinned_requirements(installed_versions(imported_distributions(files), python))
    key = hashlib.sha256(json.dumps(requirements).encode())
    for path in files:
        key.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    folder = cache or paths.cache_dir() / "runpod"
    target = folder / f"trainer-{key.hexdigest()[:16]}.tar.gz"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(_archive(root, files))
        partial.replace(target)
    data = target.read_bytes()
    return TrainerBundle(target, hashlib.sha256(data).hexdigest(), len(data), tuple(requirements))
