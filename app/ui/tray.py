"""Notifications through the system tray, where a tray exists.

Gate on ``QSystemTrayIcon.isSystemTrayAvailable()``, not ``supportsMessages()``: with no tray the
latter still says True while ``showMessage`` does nothing (NOTES.md, Notifications).
``pick_notifier`` chooses the tray when there is one, else desktop-notifier; either way the
job's alert list holds the record.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon

from app.core.notifications import AlertNotification, DesktopNotifierBackend, Notifier

MESSAGE_MS = 10_000
_ICONS = {
    "low": QSystemTrayIcon.MessageIcon.Information,
    "normal": QSystemTrayIcon.MessageIcon.Information,
    "critical": QSystemTrayIcon.MessageIcon.Critical,
}


class TrayNotifier(QObject):
    """A ``Notifier`` that shows balloon/toast messages from the app's tray icon.

    ``job_clicked(job_id)`` is emitted when the user clicks the latest message, so the main
    window can bring that job forward.
    """

    name = "system tray"
    job_clicked = Signal(str)

    def __init__(
        self,
        icon: QIcon | None = None,
        parent: QObject | None = None,
        *,
        tray: QSystemTrayIcon | None = None,
    ) -> None:
        super().__init__(parent)
        self.tray = tray or QSystemTrayIcon(icon or QIcon(), self)
        self._last_job = ""
        self.tray.messageClicked.connect(self._clicked)

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    async def send(self, note: AlertNotification) -> bool:
        if not self.available():
            return False
        if not self.tray.isVisible():
            self.tray.show()  # a message needs a visible icon to come from
        self._last_job = note.job_id
        self.tray.showMessage(note.title, note.body, _ICONS[note.urgency], MESSAGE_MS)
        return True

    def _clicked(self) -> None:
        if self._last_job:
            self.job_clicked.emit(self._last_job)


def pick_notifier(icon: QIcon | None = None, parent: QObject | None = None) -> Notifier:
    """The tray where the desktop has one, else desktop-notifier (which is silent without D-Bus)."""
    if TrayNotifier.available():
        return TrayNotifier(icon, parent)
    return DesktopNotifierBackend()
