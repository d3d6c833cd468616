"""This install's version: the package metadata (copied into a frozen build by the spec), else
pyproject.toml in a source checkout that was never installed."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path


def app_version() -> str:
    try:
        return importlib.metadata.version("tunedeck")
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text("utf-8"), re.MULTILINE)
    except OSError:
        found = None
    return found.group(1) if found else "unknown"


def version_line(program: str) -> str:
    """What ``--version`` prints: the program, the version, and whether this is a frozen build."""
    import sys

    kind = "installed build" if getattr(sys, "frozen", False) else "Python package"
    return f"{program} {app_version()} ({kind}, Python {sys.version.split()[0]})"
