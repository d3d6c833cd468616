"""The tray notifier: gated on a real tray being there, not on supportsMessages()."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from app.core.notifications import AlertNotification, DesktopNotifierBackend, format_alert
from app.ui.tray import TrayNotifier, pick_notifier
from trainer.events import Alert


class RecordingTrayIcon(QSystemTrayIcon):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, str, QSystemTrayIcon.MessageIcon]] = []

    def showMessage(self, title: str, body: str, icon: object = None, ms: int = 10_000) -> None:  # type: ignore[override]
        self.messages.append((title, body, icon))  # type: ignore[arg-type]


def _note(alert_type: str = "job_completed", job_id: str = "job-1") -> AlertNotification:
    return format_alert(Alert(type=alert_type, job_id=job_id, model_name="tiny"))


def test_no_tray_means_no_tray_message_even_if_messages_are_supported(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # offscreen has no tray; supportsMessages() still claims True on some platforms
    monkeypatch.setattr(QSystemTrayIcon, "supportsMessages", staticmethod(lambda: True))
    assert not QSystemTrayIcon.isSystemTrayAvailable()
    icon = RecordingTrayIcon()
    notifier = TrayNotifier(tray=icon)
    assert asyncio.run(notifier.send(_note())) is False
    assert icon.messages == []
    assert isinstance(pick_notifier(), DesktopNotifierBackend)


def test_with_a_tray_alerts_become_tray_messages_and_clicks_name_the_job(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    icon = RecordingTrayIcon()
    notifier = TrayNotifier(tray=icon)

    assert asyncio.run(notifier.send(_note("job_failed", "job-2"))) is True
    assert icon.messages == [
        (
            "Training failed: tiny",
            "No error message was sent. Open the job in Tunedeck for the full log.",
            QSystemTrayIcon.MessageIcon.Critical,
        )
    ]
    with qtbot.waitSignal(notifier.job_clicked, timeout=1000) as clicked:
        icon.messageClicked.emit()
    assert clicked.args == ["job-2"]
    assert isinstance(pick_notifier(), TrayNotifier)
