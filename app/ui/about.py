"""Help > About: what this is, its version, and the versions it runs on."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtWidgets import QMessageBox, QWidget


def _version(package: str) -> str:
    from importlib import metadata  # 50 ms at start-up otherwise

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_text() -> str:
    return (
        f"<h3>Tunedeck {_version('tunedeck')}</h3>"
        "<p>Fine-tune language models on this computer or on a RunPod GPU, "
        "and watch the run live.</p>"
        f"<p>Python {platform.python_version()} · PySide6 {pyside_version} · "
        f"pyqtgraph {_version('pyqtgraph')}</p>"
        "<p>Licensed under the Apache License 2.0.</p>"
    )


def show_about(parent: QWidget | None) -> None:
    QMessageBox.about(parent, "About Tunedeck", about_text())
