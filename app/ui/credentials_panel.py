"""The Credentials tab: RunPod key and Hugging Face token, kept in the OS keyring only.

Every keyring call and every check runs off the GUI thread (``OffThread``); answers come back
as text in the tab. When no usable keyring exists a banner says so and what it means, and a
saved secret is kept for this session only (never written anywhere).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.credential_checks import CheckResult
from app.core.credentials import SECRET_LABELS, CredentialStore, KeyringStatus, KeyringUnavailable
from app.ui.off_thread import OffThread

# The secrets a user types in; the receiver's key is made by Tunedeck itself.
USER_SECRETS: tuple[str, ...] = ("runpod_api_key", "hf_token")
PLACEHOLDERS = {"runpod_api_key": "rpa_…", "hf_token": "hf_…"}
Check = Callable[[str], CheckResult]

OK_STYLE = "color: #1b7a1b;"
BAD_STYLE = "color: #b00020;"
BANNER_STYLE = (
    "background: #fff4ce; color: #4a3b00; border: 1px solid #e0c060; border-radius: 4px; "
    "padding: 8px;"
)


@dataclass
class SecretRow:
    name: str
    edit: QLineEdit
    show: QCheckBox
    save: QPushButton
    test: QPushButton
    forget: QPushButton
    result: QLabel


class CredentialsPanel(QWidget):
    """Masked field, Show, Save, Test and Forget for each secret, plus the keyring's state."""

    def __init__(
        self,
        store: CredentialStore,
        checks: dict[str, Check],
        runner: OffThread,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._checks = checks
        self._runner = runner
        self._loaded: dict[str, str] = {}
        self._keyring_ok: bool | None = None

        self.banner = QLabel()
        self.banner.setObjectName("keyringBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(BANNER_STYLE)
        self.banner.setHidden(True)
        self.status = QLabel("Checking the OS keyring…")
        self.status.setObjectName("keyringStatus")
        self.status.setWordWrap(True)

        grid = QGridLayout()
        self.rows: dict[str, SecretRow] = {}
        for index, name in enumerate(USER_SECRETS):
            self.rows[name] = self._make_row(grid, index * 2, name)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addLayout(grid)
        note = QLabel(
            "Secrets are never written to Tunedeck's files, logs or exported configs. The RunPod "
            "key stays on this computer; the Hugging Face token is given to each run you start "
            "(as HF_TOKEN, for private models, datasets and pushes to the Hub)."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        layout.addWidget(note)
        layout.addStretch(1)

    # ---- start-up ----------------------------------------------------------------------

    def start(self) -> None:
        """Probe the keyring, then fill the fields with what it holds (all off-thread).

        The probe is forced: opening Settings is how a user retries after fixing the keyring.
        """
        self._runner.run(functools.partial(self._store.probe, force=True), self._probed)

    def _probed(self, future: Future[Any]) -> None:
        status: KeyringStatus = future.result()
        self._show_keyring_status(status)
        for name in USER_SECRETS:
            self._runner.run(
                functools.partial(self._read, name), functools.partial(self._filled, name)
            )

    def _read(self, name: str) -> str | None:
        try:
            return self._store.get(name)
        except KeyringUnavailable:
            return None  # the banner already says why; a session value would have been returned

    def _filled(self, name: str, future: Future[Any]) -> None:
        value = future.result()
        row = self.rows[name]
        if value and not row.edit.text():
            row.edit.setText(value)
        self._loaded[name] = value or ""
        if value and self._store.is_session_only(name):
            self._say(row, "Kept for this session only (not saved).", ok=True)

    def _show_keyring_status(self, status: KeyringStatus) -> None:
        self._keyring_ok = status.available
        if status.available:
            self.banner.setHidden(True)
            self.status.setText(status.message)
            return
        self.status.setText("Secrets entered here are kept for this session only.")
        hint = f"<br>{status.hint}" if status.hint else ""
        self.banner.setText(f"<b>Secrets cannot be saved.</b> {status.message}{hint}")
        self.banner.setHidden(False)

    # ---- rows --------------------------------------------------------------------------

    def _make_row(self, grid: QGridLayout, line: int, name: str) -> SecretRow:
        label = QLabel(SECRET_LABELS[name][0].upper() + SECRET_LABELS[name][1:])
        edit = QLineEdit()
        edit.setObjectName(f"{name}_edit")
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setPlaceholderText(PLACEHOLDERS.get(name, ""))
        label.setBuddy(edit)
        show = QCheckBox("Show")
        save = QPushButton("Save")
        test = QPushButton("Test")
        forget = QPushButton("Forget")
        for button, verb in ((save, "save"), (test, "test"), (forget, "forget")):
            button.setObjectName(f"{name}_{verb}")
        result = QLabel()
        result.setObjectName(f"{name}_result")
        result.setWordWrap(True)
        row = SecretRow(name, edit, show, save, test, forget, result)

        show.toggled.connect(
            lambda on: edit.setEchoMode(
                QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password
            )
        )
        save.clicked.connect(lambda: self.save(name))
        test.clicked.connect(lambda: self.test(name))
        forget.clicked.connect(lambda: self.forget(name))

        buttons = QHBoxLayout()
        for widget in (show, save, test, forget):
            buttons.addWidget(widget)
        grid.addWidget(label, line, 0)
        grid.addWidget(edit, line, 1)
        grid.addLayout(buttons, line, 2)
        grid.addWidget(result, line + 1, 1, 1, 2)
        return row

    def _busy(self, row: SecretRow, busy: bool) -> None:
        for button in (row.save, row.test, row.forget):
            button.setEnabled(not busy)

    def _say(self, row: SecretRow, text: str, *, ok: bool) -> None:
        row.result.setText(("✓ " if ok else "✗ ") + text)
        row.result.setStyleSheet(OK_STYLE if ok else BAD_STYLE)

    # ---- actions -----------------------------------------------------------------------

    def save(self, name: str, on_done: Callable[[], None] | None = None) -> None:
        row = self.rows[name]
        value = row.edit.text().strip()
        if not value:
            self._say(row, f"Enter the {SECRET_LABELS[name]} first.", ok=False)
            return
        self._busy(row, True)
        row.result.setText("Saving…")
        row.result.setStyleSheet("")

        def saved(future: Future[Any]) -> None:
            self._busy(row, False)
            error = future.exception()
            if error is None:
                self._say(row, "Saved in the OS keyring.", ok=True)
            elif isinstance(error, KeyringUnavailable):
                self._store.set_session(name, value)
                self._show_keyring_status(
                    KeyringStatus(
                        False, self._store.backend_description(), error.message, error.hint
                    )
                )
                self._say(row, "Kept for this session only: it was not saved anywhere.", ok=True)
            else:
                self._say(row, f"Could not save: {type(error).__name__}.", ok=False)
            if error is None or isinstance(error, KeyringUnavailable):
                self._loaded[name] = value
            if on_done:
                on_done()

        self._runner.run(lambda: self._store.set(name, value), saved)

    def test(self, name: str) -> None:
        row = self.rows[name]
        typed = row.edit.text().strip()
        self._busy(row, True)
        row.result.setText("Testing…")
        row.result.setStyleSheet("")
        check = self._checks[name]

        def run_check() -> CheckResult:
            value = typed or self._read(name) or ""
            return check(value)

        def checked(future: Future[Any]) -> None:
            self._busy(row, False)
            error = future.exception()
            if error is not None:
                self._say(row, f"The test could not run ({type(error).__name__}).", ok=False)
                return
            result: CheckResult = future.result()
            self._say(row, result.message, ok=result.ok)

        self._runner.run(run_check, checked)

    def forget(self, name: str) -> None:
        row = self.rows[name]
        self._busy(row, True)

        def forgotten(future: Future[Any]) -> None:
            self._busy(row, False)
            error = future.exception()
            if error is None:
                row.edit.clear()
                self._loaded[name] = ""
                self._say(row, "Forgotten.", ok=True)
            elif isinstance(error, KeyringUnavailable):
                self._say(row, f"Could not reach the keyring: {error.message}", ok=False)
            else:
                self._say(row, f"Could not forget it: {type(error).__name__}.", ok=False)

        self._runner.run(lambda: self._store.delete(name), forgotten)

    def unsaved(self) -> list[str]:
        """Secrets typed in but not saved (fields never loaded count only when non-empty)."""
        return [
            name
            for name, row in self.rows.items()
            if row.edit.text().strip() and row.edit.text().strip() != self._loaded.get(name, "")
        ]
