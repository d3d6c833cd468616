"""A keyring that hangs: the app stays responsive and says what is wrong within its time limit.

The one part here that is not the real thing is the keyring backend: a hung Secret Service
cannot be made safely on a shared machine (NOTES.md: a bus without a secrets service hangs each
call for 120 s), so a real ``KeyringBackend`` subclass, registered with ``keyring.set_keyring``
as a desktop's backend would be, blocks in its calls instead. Everything above it is the app's
own: CredentialStore, the Settings dialog and the Tunedeck composition root.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import keyring
import keyring.compat.properties
import pytest
import qasync
from keyring.backend import KeyringBackend
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from app.core.credentials import CredentialStore, KeyringUnavailable
from app.core.settings import Settings
from app.ui.settings_dialog import SettingsDialog
from tests.ui.app_harness import make_app

LIMIT_S = 0.5
SLACK_S = 2.0  # thread start-up and a busy shared CPU; the hang itself would be 30 s


class HangingKeyring(KeyringBackend):
    """Blocks in every call while ``hanging`` is set, until ``release`` (or 30 s)."""

    hanging = threading.Event()
    release = threading.Event()

    @keyring.compat.properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never selected automatically")

    def _wait(self) -> None:
        if self.hanging.is_set():
            self.release.wait(30)

    def get_password(self, service: str, username: str) -> str | None:
        self._wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self._wait()

    def delete_password(self, service: str, username: str) -> None:
        self._wait()


@pytest.fixture
def hanging_keyring() -> Iterator[type[HangingKeyring]]:
    previous = keyring.get_keyring()
    HangingKeyring.hanging.set()
    HangingKeyring.release.clear()
    keyring.set_keyring(HangingKeyring())
    try:
        yield HangingKeyring
    finally:
        HangingKeyring.release.set()  # the abandoned calls end; their threads exit
        HangingKeyring.hanging.clear()
        keyring.set_keyring(previous)


class Ticks:
    """A QTimer counting its ticks: it advances only while the Qt event loop runs."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.count = 0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        self.count += 1

    def stop(self) -> None:
        self.timer.stop()


def test_a_read_from_a_hanging_keyring_ends_in_time_with_a_clear_error(
    hanging_keyring: type[HangingKeyring],
) -> None:
    store = CredentialStore(timeout_s=LIMIT_S)  # the keyring's own choice: the hanging one
    started = time.monotonic()
    with pytest.raises(KeyringUnavailable) as err:
        store.get("hf_token")
    took = time.monotonic() - started
    assert LIMIT_S <= took < LIMIT_S + SLACK_S
    assert f"did not answer within {LIMIT_S:g} s" in err.value.message
    assert "Unlock or restart your desktop keyring" in err.value.hint
    # a broken keyring costs one wait per session, not one per call
    started = time.monotonic()
    with pytest.raises(KeyringUnavailable):
        store.get("runpod_api_key")
    assert time.monotonic() - started < 0.2


def test_save_in_settings_waits_off_the_gui_thread_and_says_why_it_fell_back(
    qtbot: QtBot, hanging_keyring: type[HangingKeyring]
) -> None:
    hanging_keyring.hanging.clear()  # the keyring answers when Settings opens...
    dialog = SettingsDialog(Settings(), CredentialStore(timeout_s=LIMIT_S))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
    assert not dialog.credentials.banner.isVisible()
    hanging_keyring.hanging.set()  # ...and hangs when the user saves
    row = dialog.credentials.rows["hf_token"]
    row.edit.setText("hf_SAVED_WHILE_THE_KEYRING_HANGS")
    ticks = Ticks()
    try:
        started = time.monotonic()
        row.save.click()
        assert time.monotonic() - started < 0.2  # the click returns at once
        assert row.result.text() == "Saving…"
        qtbot.waitUntil(lambda: not dialog.busy, timeout=int((LIMIT_S + SLACK_S) * 1000))
        took = time.monotonic() - started
    finally:
        ticks.stop()
    assert took >= LIMIT_S
    assert ticks.count >= 10  # the event loop ran all along (a 10 ms timer over >= 0.5 s)
    assert "Kept for this session only" in row.result.text()
    assert dialog.credentials.banner.isVisible()
    assert f"did not answer within {LIMIT_S:g} s" in dialog.credentials.banner.text()


def test_the_app_starts_and_says_what_is_wrong_when_the_keyring_hangs(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path, hanging_keyring: type[HangingKeyring]
) -> None:
    tunedeck = make_app(tmp_path)
    tunedeck.credentials = CredentialStore(timeout_s=LIMIT_S)
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    ticks = Ticks()
    try:
        started = time.monotonic()
        qloop.run_until_complete(asyncio.wait_for(tunedeck.start(), LIMIT_S + SLACK_S + 3))
        took = time.monotonic() - started
    finally:
        ticks.stop()
    try:
        assert took >= LIMIT_S and ticks.count >= 10
        note = tunedeck.window.statusBar().currentMessage()
        assert tunedeck.receiver.url in note  # it runs, with a key for this session
        assert f"did not answer within {LIMIT_S:g} s" in note
        assert "for this session only" in note
    finally:
        qloop.run_until_complete(tunedeck.stop())
