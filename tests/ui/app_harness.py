"""Shared pieces for the tests that run the whole app (the ``qloop`` fixture is in conftest)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.notifications import RecordingNotifier
from app.core.settings import Settings
from app.main import Tunedeck
from app.ui.presets import BUILTIN_DIR

API_KEY = "test-receiver-key-" + "x" * 20


class MemoryCredentials:
    """Stands in for the keyring-backed CredentialStore (tested on its own in tests/app)."""

    def receiver_api_key(self) -> str:
        return API_KEY

    async def get_async(self, name: str) -> str | None:
        return None

    def known_values(self) -> frozenset[str]:
        return frozenset({API_KEY})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` with the loop running; its truthy value, or a failure naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def make_app(
    base_dir: Path, notifier: RecordingNotifier | None = None, port: int | None = None
) -> Tunedeck:
    settings = Settings(
        receiver_port=port or free_port(), trainer_python=sys.executable, first_run_done=True
    )
    return Tunedeck(
        settings=settings,
        credentials=MemoryCredentials(),
        notifier=notifier or RecordingNotifier(),
        base_dir=base_dir,
        grace_s=30.0,
    )


def demo_config(**training: Any) -> dict[str, Any]:
    """The demo preset with shorter training (the real preset is 200 steps)."""
    data = json.loads((BUILTIN_DIR / "demo-sft.json").read_text())
    data["training"].update(training)
    return data
