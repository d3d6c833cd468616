"""Fixtures for the Qt tests. Nothing here is autouse: each test asks for what it drives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import qasync
import shiboken6
from PySide6.QtWidgets import QApplication


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """An asyncio loop on Qt's (qasync), for tests that drive the app's coroutines.

    pytest-qt's waitUntil spins a nested Qt loop in which asyncio does not run (NOTES.md): such
    tests use ``loop.run_until_complete`` and poll with ``app_harness.until``.
    """
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()  # stops qasync's executor threads (asyncio.to_thread runs there)
    asyncio.set_event_loop(None)
    # close() leaves the pending timers of qasync's timer object registered with Qt; fired by a
    # later test's event pass after the loop was collected, one crashed the run (segfault).
    # Deleting the object unregisters them.
    shiboken6.delete(loop._timer)
