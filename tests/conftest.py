"""Suite-wide set-up: isolate every test from the user's machine and from the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports Qt, transformers or TRL.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TUNEDECK_TORCH_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data, settings and caches of the app and trainer live under tmp_path."""
    monkeypatch.setenv("TUNEDECK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUNEDECK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(_shared_cache_dir()))


def _shared_cache_dir() -> Path:
    # The built-in tiny model is deterministic, so one copy per test session is enough.
    path = Path(os.environ.get("TUNEDECK_TEST_CACHE", "/tmp/tunedeck-test-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a BPE tokenizer and ChatML template (about 0.5 MB)."""
    import torch

    torch.set_num_threads(1)
    from trainer.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def qloop(qapp: Any) -> Iterator[Any]:
    """An asyncio loop on Qt's (qasync), for tests that drive the app's coroutines.

    pytest-qt's waitUntil spins a nested Qt loop in which asyncio does not run (NOTES.md): such
    tests use ``loop.run_until_complete`` and poll with ``tests.ui.app_harness.until``.
    """
    import asyncio

    import qasync
    import shiboken6

    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()  # stops qasync's executor threads (asyncio.to_thread runs there)
    asyncio.set_event_loop(None)
    # close() leaves the pending timers of qasync's timer object registered with Qt; fired by a
    # later test's event pass after the loop was collected, one crashed the run (segfault).
    # Deleting the object unregisters them.
    shiboken6.delete(loop._timer)
