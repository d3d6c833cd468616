"""The Settings dialog, driven as a user would: real widgets offscreen, real keyring outcomes,
credential tests against a fake server on 127.0.0.1, the settings file on disk."""

from __future__ import annotations

import functools
import json
import os
import stat
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest
from keyring.backend import KeyringBackend
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLineEdit
from pytestqt.qtbot import QtBot

from app.core.credential_checks import check_hf_token, check_runpod_key
from app.core.credentials import SECRET_NAMES, CredentialStore
from app.core.settings import Settings, load_settings
from app.ui.settings_dialog import SettingsDialog

GOOD_KEY = "rpa_GOODKEY0123456789abcdef"
GOOD_TOKEN = "hf_GOODTOKEN0123456789abcdef"


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def fake_api() -> Iterator[str]:
    """RunPod's list-pods and the Hub's whoami on one fake server; only the good ones pass."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            if self.path == "/v2/pods" and auth == f"Bearer {GOOD_KEY}":
                status, body = 200, {"pods": []}
            elif self.path == "/api/whoami-v2" and auth == f"Bearer {GOOD_TOKEN}":
                status, body = 200, {"name": "ada"}
            else:
                status, body = 401, {"error": "unauthorized"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def no_keyring_store() -> CredentialStore:
    return CredentialStore(keyring.backends.fail.Keyring())


def _open(qtbot: QtBot, store: CredentialStore, **kwargs: Any) -> SettingsDialog:
    dialog = SettingsDialog(Settings(), store, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    _settle(qtbot, dialog)
    return dialog


def _settle(qtbot: QtBot, dialog: SettingsDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


def _files_containing(text: str) -> list[Path]:
    hits = []
    for var in ("TUNEDECK_CONFIG_DIR", "TUNEDECK_DATA_DIR"):
        folder = Path(os.environ[var])
        if folder.exists():
            hits += [
                p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()
            ]
    return hits


# ---- credentials ---------------------------------------------------------------------------


def test_without_a_keyring_the_banner_explains_and_save_is_session_only(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    dialog = _open(qtbot, no_keyring_store)
    panel = dialog.credentials
    assert panel.banner.isVisible()
    assert "No usable keyring" in panel.banner.text()
    assert "this session only" in panel.banner.text()
    assert "never written" in panel.banner.text()

    row = panel.rows["runpod_api_key"]
    qtbot.keyClicks(row.edit, GOOD_KEY)
    qtbot.mouseClick(row.save, Qt.MouseButton.LeftButton)
    _settle(qtbot, dialog)

    assert "Kept for this session only" in row.result.text()
    assert no_keyring_store.get("runpod_api_key") == GOOD_KEY
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton
    )
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert Path(os.environ["TUNEDECK_CONFIG_DIR"], "settings.json").exists()
    assert _files_containing(GOOD_KEY) == []


def test_a_secret_typed_but_not_saved_is_kept_when_ok_is_pressed(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    dialog = _open(qtbot, no_keyring_store)
    qtbot.keyClicks(dialog.credentials.rows["hf_token"].edit, GOOD_TOKEN)
    dialog.accept()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    assert no_keyring_store.get("hf_token") == GOOD_TOKEN
    assert no_keyring_store.is_session_only("hf_token")


def test_fields_are_masked_until_show_is_ticked(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    no_keyring_store.set_session("hf_token", GOOD_TOKEN)
    dialog = _open(qtbot, no_keyring_store)
    row = dialog.credentials.rows["hf_token"]
    assert row.edit.text() == GOOD_TOKEN  # the session value is shown (masked)
    assert row.edit.echoMode() == QLineEdit.EchoMode.Password
    row.show.setChecked(True)
    assert row.edit.echoMode() == QLineEdit.EchoMode.Normal
    row.show.setChecked(False)
    assert row.edit.echoMode() == QLineEdit.EchoMode.Password


def test_test_buttons_report_accepted_and_rejected(
    qtbot: QtBot, no_keyring_store: CredentialStore, fake_api: str
) -> None:
    dialog = _open(
        qtbot,
        no_keyring_store,
        check_runpod=functools.partial(check_runpod_key, base_url=fake_api),
        check_hf=functools.partial(check_hf_token, base_url=fake_api),
    )
    runpod = dialog.credentials.rows["runpod_api_key"]
    qtbot.keyClicks(runpod.edit, "rpa_WRONGKEY")
    qtbot.mouseClick(runpod.test, Qt.MouseButton.LeftButton)
    _settle(qtbot, dialog)
    assert runpod.result.text().startswith("✗ RunPod rejected the key (401)")

    runpod.edit.setText(GOOD_KEY)
    qtbot.mouseClick(runpod.test, Qt.MouseButton.LeftButton)
    assert not runpod.test.isEnabled()  # busy while the request runs off the GUI thread
    _settle(qtbot, dialog)
    assert runpod.result.text() == "✓ RunPod accepted the key (0 pods on the account)."
    assert runpod.test.isEnabled()

    # an empty field tests the stored value
    no_keyring_store.set_session("hf_token", GOOD_TOKEN)
    hf = dialog.credentials.rows["hf_token"]
    hf.edit.clear()
    qtbot.mouseClick(hf.test, Qt.MouseButton.LeftButton)
    _settle(qtbot, dialog)
    assert hf.result.text() == "✓ Hugging Face accepted the token as ada."


def test_test_button_says_when_the_service_cannot_be_reached(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    dialog = _open(
        qtbot,
        no_keyring_store,
        check_hf=functools.partial(check_hf_token, base_url="http://127.0.0.1:9"),
    )
    hf = dialog.credentials.rows["hf_token"]
    hf.edit.setText(GOOD_TOKEN)
    hf.test.click()
    _settle(qtbot, dialog)
    assert hf.result.text().startswith("✗ Could not reach Hugging Face")


class HangingKeyring(KeyringBackend):
    release = threading.Event()

    @keyring.compat.properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never selected automatically")

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait(30)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.release.wait(30)

    def delete_password(self, service: str, username: str) -> None:
        self.release.wait(30)


def test_a_hanging_keyring_does_not_freeze_the_dialog(qtbot: QtBot) -> None:
    HangingKeyring.release.clear()
    try:
        store = CredentialStore(HangingKeyring(), timeout_s=0.5)
        started = time.monotonic()
        dialog = SettingsDialog(Settings(), store)
        qtbot.addWidget(dialog)
        dialog.show()
        assert time.monotonic() - started < 0.4  # the probe runs off the GUI thread
        assert "Checking" in dialog.credentials.status.text()
        _settle(qtbot, dialog)
        assert dialog.credentials.banner.isVisible()
        assert "did not answer within 0.5 s" in dialog.credentials.banner.text()
    finally:
        HangingKeyring.release.set()


def test_real_keyring_save_then_reopen_shows_the_saved_value(qtbot: QtBot) -> None:
    if os.environ.get("TUNEDECK_SECRET_SERVICE") != "1":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run this under scripts/with-keyring.sh (a real Secret Service)")
        pytest.skip("no Secret Service here: run under scripts/with-keyring.sh")
    from keyring.backends.SecretService import Keyring

    service = f"tunedeck-test-{uuid.uuid4().hex[:8]}"
    store = CredentialStore(Keyring(), service=service, timeout_s=10)
    try:
        dialog = _open(qtbot, store)
        assert dialog.credentials.banner.isHidden()
        assert "Secret Service" in dialog.credentials.status.text()
        row = dialog.credentials.rows["runpod_api_key"]
        qtbot.keyClicks(row.edit, GOOD_KEY)
        row.save.click()
        _settle(qtbot, dialog)
        assert row.result.text() == "✓ Saved in the OS keyring."
        dialog.reject()

        fresh = CredentialStore(Keyring(), service=service)
        assert fresh.get("runpod_api_key") == GOOD_KEY
        reopened = _open(qtbot, fresh)
        assert reopened.credentials.rows["runpod_api_key"].edit.text() == GOOD_KEY
        assert _files_containing(GOOD_KEY) == []

        again = reopened.credentials.rows["runpod_api_key"]
        again.forget.click()
        _settle(qtbot, reopened)
        assert again.edit.text() == ""
        assert CredentialStore(Keyring(), service=service).get("runpod_api_key") is None
    finally:
        for name in SECRET_NAMES:
            store.delete(name)


# ---- the other tabs ------------------------------------------------------------------------


def test_receiver_bind_address_warns_unless_loopback(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    dialog = _open(qtbot, no_keyring_store)
    dialog.tabs.setCurrentIndex(1)
    assert dialog.host_warning.isHidden()
    dialog.host.setText("0.0.0.0")
    assert not dialog.host_warning.isHidden()
    assert "other machines can reach it" in dialog.host_warning.text()
    dialog.host.setText("127.0.0.1")
    assert dialog.host_warning.isHidden()


def test_ok_writes_the_settings_file_and_announces_them(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    dialog = _open(qtbot, no_keyring_store)
    dialog.port.setValue(9100)
    dialog.notify_boxes["job_started"].setChecked(False)
    dialog.stall.setValue(0)
    assert dialog.stall.text() == "never"
    dialog.python.setText("/opt/train/bin/python")

    with qtbot.waitSignal(dialog.settings_saved, timeout=5000) as saved:
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()

    new: Settings = saved.args[0]
    assert new.receiver_port == 9100
    on_disk = load_settings()
    assert on_disk.warnings == []
    assert on_disk.settings.receiver_port == 9100
    assert on_disk.settings.notifies("job_started") is False
    assert on_disk.settings.notifies("job_failed") is True
    assert on_disk.settings.stall_minutes == 0
    assert on_disk.settings.trainer_python == "/opt/train/bin/python"


def test_a_bad_value_keeps_the_dialog_open_and_writes_nothing(
    qtbot: QtBot, no_keyring_store: CredentialStore
) -> None:
    dialog = _open(qtbot, no_keyring_store)
    dialog.host.setText("my desktop")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert dialog.isVisible()
    assert not dialog.error.isHidden()
    assert "receiver_host" in dialog.error.text()
    assert not Path(os.environ["TUNEDECK_CONFIG_DIR"], "settings.json").exists()


def test_cancel_changes_nothing(qtbot: QtBot, no_keyring_store: CredentialStore) -> None:
    dialog = _open(qtbot, no_keyring_store)
    dialog.port.setValue(9999)
    dialog.buttons.button(dialog.buttons.StandardButton.Cancel).click()
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert not Path(os.environ["TUNEDECK_CONFIG_DIR"], "settings.json").exists()


def test_python_check_reports_ready_or_what_is_missing(
    qtbot: QtBot, no_keyring_store: CredentialStore, tmp_path: Path
) -> None:
    dialog = _open(qtbot, no_keyring_store)
    dialog.tabs.setCurrentIndex(3)
    # checked on opening: the default is this Python, which has the trainer packages
    assert dialog.python.text() == sys.executable
    assert dialog.python_result.text().startswith("✓ Python 3.")

    dialog.python.setText("/nonexistent/python")
    dialog.python_check.click()
    _settle(qtbot, dialog)
    assert "does not exist" in dialog.python_result.text()
    dialog.python.setText(sys.executable)
    dialog.python_check.click()
    _settle(qtbot, dialog)
    assert "ready to train" in dialog.python_result.text()

    bare = tmp_path / "python-bare"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(bare.stat().st_mode | stat.S_IXUSR)
    dialog.python.setText(str(bare))
    dialog.python_check.click()
    _settle(qtbot, dialog)
    assert "lacks torch, transformers, trl, peft, datasets" in dialog.python_result.text()
