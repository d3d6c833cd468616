"""Settings: credentials, the receiver, notifications, and the Python that runs training.

``SettingsDialog(settings, credentials)`` edits a copy of the settings; OK validates it, saves any
secret typed in but not yet saved, writes the settings file, emits ``settings_saved`` with the
new settings and closes. The app applies them at once (``Tunedeck._settings_saved``), except
the receiver's port and address, which apply at its next start (the Receiver tab says so).
Cancel changes nothing (secrets already saved with their own Save
button stay saved). Checks that touch the network, the keyring or another process run off the
GUI thread; the dialog stays responsive while they do.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.credential_checks import CheckResult, check_hf_token, check_runpod_key
from app.core.credentials import CredentialStore
from app.core.notifications import alert_title
from app.core.settings import Settings, receiver_host_warning, save_settings
from app.core.trainer_python import PythonCheck, check_trainer_python, trainer_python_message
from app.ui.credentials_panel import BAD_STYLE, BANNER_STYLE, OK_STYLE, CredentialsPanel
from app.ui.off_thread import OffThread
from trainer.events import ALERT_TYPES


class SettingsDialog(QDialog):
    """Tabs: Credentials, Receiver, Notifications, Training environment."""

    settings_saved = Signal(object)  # the new Settings

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialStore,
        parent: QWidget | None = None,
        *,
        settings_path: Path | None = None,
        check_runpod: Callable[[str], CheckResult] = check_runpod_key,
        check_hf: Callable[[str], CheckResult] = check_hf_token,
        check_python: Callable[[str], PythonCheck] = check_trainer_python,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tunedeck settings")
        self.setMinimumWidth(640)
        self._settings = settings
        self._settings_path = settings_path
        self._check_python = check_python
        self._runner = OffThread(self)

        self.credentials = CredentialsPanel(
            credentials, {"runpod_api_key": check_runpod, "hf_token": check_hf}, self._runner
        )
        self.tabs = QTabWidget()
        self.tabs.addTab(self.credentials, "Credentials")
        self.tabs.addTab(self._receiver_tab(), "Receiver")
        self.tabs.addTab(self._notifications_tab(), "Notifications")
        self.tabs.addTab(self._python_tab(), "Training environment")

        self.error = QLabel()
        self.error.setObjectName("settingsError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(BAD_STYLE)
        self.error.setHidden(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.credentials.start()
        if self._settings.trainer_python:
            self.check_python()  # the tab opens knowing whether the chosen Python can train

    # ---- tabs --------------------------------------------------------------------------

    def _receiver_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(self._settings.receiver_port)
        self.port.setToolTip(_description("receiver_port"))
        self.host = QLineEdit(self._settings.receiver_host)
        self.host.setToolTip(_description("receiver_host"))
        self.host_warning = QLabel()
        self.host_warning.setObjectName("hostWarning")
        self.host_warning.setWordWrap(True)
        self.host_warning.setStyleSheet(BANNER_STYLE)
        self.host.textChanged.connect(self._update_host_warning)
        self._update_host_warning(self.host.text())
        form.addRow("Port", self.port)
        form.addRow("Listen on", self.host)
        form.addRow(self.host_warning)
        note = QLabel(
            "The port and address apply the next time Tunedeck starts: running trainers keep "
            "reporting to the receiver they were given. Every other setting applies at once."
        )
        note.setObjectName("receiverNote")
        note.setWordWrap(True)
        form.addRow(note)
        return page

    def _update_host_warning(self, host: str) -> None:
        warning = receiver_host_warning(host.strip()) if host.strip() else None
        self.host_warning.setText(warning or "")
        self.host_warning.setHidden(warning is None)

    def _notifications_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(
            QLabel(
                "Show a desktop notification for these alerts (every alert is kept in the "
                "job's alert list either way):"
            )
        )
        self.notify_boxes: dict[str, QCheckBox] = {}
        for alert_type in ALERT_TYPES:
            box = QCheckBox(alert_title(alert_type))
            box.setObjectName(f"notify_{alert_type}")
            box.setChecked(self._settings.notifies(alert_type))
            self.notify_boxes[alert_type] = box
            layout.addWidget(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Report a run as stalled after"))
        self.stall = QSpinBox()
        self.stall.setRange(0, 24 * 60)
        self.stall.setSuffix(" min without news")
        self.stall.setSpecialValueText("never")
        self.stall.setValue(self._settings.stall_minutes)
        self.stall.setToolTip(_description("stall_minutes"))
        row.addWidget(self.stall)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)
        return page

    def _python_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(QLabel(_description("trainer_python")))
        row = QHBoxLayout()
        self.python = QLineEdit(self._settings.trainer_python)
        self.python.setPlaceholderText("path to python, e.g. ~/venvs/train/bin/python")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_python)
        self.python_check = QPushButton("Check")
        self.python_check.setObjectName("pythonCheck")
        self.python_check.clicked.connect(self.check_python)
        use_this = QPushButton("Use Tunedeck's Python")
        use_this.setToolTip(sys.executable)
        use_this.clicked.connect(lambda: self.python.setText(sys.executable))
        use_this.setHidden(getattr(sys, "frozen", False))  # an installed app has no Python to lend
        for widget in (self.python, browse, self.python_check, use_this):
            row.addWidget(widget)
        layout.addLayout(row)
        set_up = QPushButton("Set up local training…")
        set_up.setObjectName("trainerEnvSetUp")
        set_up.setToolTip("Create (or repair) a Python environment with torch and the trainer")
        set_up.clicked.connect(self.open_training_setup)
        layout.addWidget(set_up, 0, Qt.AlignmentFlag.AlignLeft)
        self.python_result = QLabel(trainer_python_message(self._settings.trainer_python) or "")
        self.python_result.setObjectName("pythonResult")
        self.python_result.setWordWrap(True)
        layout.addWidget(self.python_result)
        layout.addStretch(1)
        return page

    def open_training_setup(self) -> None:
        from app.ui.trainer_env_dialog import TrainerEnvDialog

        dialog = TrainerEnvDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.ready.connect(self._training_env_ready)
        self.training_setup = dialog
        dialog.open()

    def _training_env_ready(self, python: str) -> None:
        self.python.setText(python)
        self.check_python()

    def _browse_python(self) -> None:
        start = self.python.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose the Python that runs training", start)
        if path:
            self.python.setText(path)
            self.check_python()

    def check_python(self) -> None:
        path = self.python.text().strip()
        self.python_check.setEnabled(False)
        self.python_result.setStyleSheet("")
        self.python_result.setText("Checking…")

        def checked(future: Future[Any]) -> None:
            self.python_check.setEnabled(True)
            error = future.exception()
            if error is not None:
                self.python_result.setText(f"The check could not run ({type(error).__name__}).")
                self.python_result.setStyleSheet(BAD_STYLE)
                return
            result: PythonCheck = future.result()
            self.python_result.setText(("✓ " if result.ok else "✗ ") + result.message)
            self.python_result.setStyleSheet(OK_STYLE if result.ok else BAD_STYLE)

        self._runner.run(lambda: self._check_python(path), checked)

    # ---- OK / Cancel -------------------------------------------------------------------

    def edited_settings(self) -> Settings:
        """The settings as the widgets show them; raises ValidationError for a bad value."""
        data = self._settings.model_dump()
        data.update(
            receiver_port=self.port.value(),
            receiver_host=self.host.text().strip(),
            notify={**data["notify"], **{t: b.isChecked() for t, b in self.notify_boxes.items()}},
            stall_minutes=self.stall.value(),
            trainer_python=self.python.text().strip(),
        )
        return Settings.model_validate(data)

    def accept(self) -> None:
        try:
            edited = self.edited_settings()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            self._show_error(f"Not saved: {problems}.")
            return
        pending = self.credentials.unsaved()
        if not pending:
            self._finish(edited)
            return
        # Typed secrets are saved before closing (each off-thread, to the keyring or the session).
        self.buttons.setEnabled(False)
        remaining = set(pending)

        def one_done(name: str) -> None:
            remaining.discard(name)
            if not remaining:
                self.buttons.setEnabled(True)
                self._finish(edited)

        for name in pending:
            self.credentials.save(name, on_done=functools.partial(one_done, name))

    def _finish(self, edited: Settings) -> None:
        try:
            save_settings(edited, self._settings_path)
        except OSError as exc:
            self._show_error(f"Settings could not be written ({exc.strerror or exc}).")
            return
        self._settings = edited
        self.settings_saved.emit(edited)
        super().accept()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setHidden(False)

    def done(self, result: int) -> None:
        self._runner.shutdown()
        super().done(result)

    @property
    def busy(self) -> bool:
        """Whether a keyring call or a check is still running (tests wait on this)."""
        return self._runner.busy


def _description(field: str) -> str:
    return Settings.model_fields[field].description or ""
