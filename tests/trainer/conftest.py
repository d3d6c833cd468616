"""Fixtures shared by the trainer's reporting and run-control tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.live_receiver import LiveReceiver


@pytest.fixture
def app_receiver(tmp_path: Path) -> Iterator[LiveReceiver]:
    """The app's receiver for one job (store in tmp_path), on 127.0.0.1, not started yet: a
    test starts it when it wants it up, and builds the trainer's environment from ``env()``."""
    r = LiveReceiver(tmp_path / "receiver")
    yield r
    r.close()


@pytest.fixture
def receiver(app_receiver: LiveReceiver, monkeypatch: pytest.MonkeyPatch) -> LiveReceiver:
    """The app's receiver, started, with the contract environment pointing at it."""
    app_receiver.start()
    for key, value in app_receiver.env().items():
        monkeypatch.setenv(key, value)
    return app_receiver
