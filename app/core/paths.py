"""Where Tunedeck keeps its files: data (the SQLite store, job folders), config, caches.

The platform's folders (platformdirs) unless ``TUNEDECK_DATA_DIR`` / ``TUNEDECK_CONFIG_DIR`` /
``TUNEDECK_CACHE_DIR`` say otherwise; tests point all three at a temporary folder. Nothing here
creates a folder: the code that writes a file creates its parent.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tunedeck"
STORE_FILE = "tunedeck.sqlite3"


def _override(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    return _override("TUNEDECK_DATA_DIR") or Path(
        platformdirs.user_data_dir(APP_NAME, appauthor=False)
    )


def config_dir() -> Path:
    return _override("TUNEDECK_CONFIG_DIR") or Path(
        platformdirs.user_config_dir(APP_NAME, appauthor=False)
    )


def cache_dir() -> Path:
    return _override("TUNEDECK_CACHE_DIR") or Path(
        platformdirs.user_cache_dir(APP_NAME, appauthor=False)
    )


def store_path() -> Path:
    """The SQLite file every part of the app reads and writes."""
    return data_dir() / STORE_FILE


def job_dir(job_id: str) -> Path:
    """A job's own folder: the config it was started with and the trainer's log."""
    return data_dir() / "jobs" / job_id
