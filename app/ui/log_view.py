"""A job's output: the trainer's stdout and stderr as it arrives, tail followed.

Output comes in bursts (a progress bar rewrites its line many times a second), so text is
buffered and appended at most every ``FLUSH_MS``; a carriage return replaces the current line as
a terminal would, and the view keeps the last ``MAX_LINES`` lines.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont, QFontDatabase, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

FLUSH_MS = 50
MAX_LINES = 20_000


class LogView(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("logView")
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.setPlaceholderText("The trainer's output appears here.")
        self._pending: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)

    def set_text(self, text: str) -> None:
        """Replace everything (a job selected: its log file so far)."""
        self._pending.clear()
        self.setPlainText("")
        self._write(text)

    def append_output(self, text: str) -> None:
        self._pending.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        self._timer.stop()
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._write(text)

    def text(self) -> str:
        self.flush()
        return self.toPlainText()

    def _write(self, text: str) -> None:
        bar = self.verticalScrollBar()
        following = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        text = text.replace("\r\n", "\n")
        for i, part in enumerate(text.split("\r")):
            if i > 0:  # a carriage return: the line starts over
                cursor.movePosition(
                    QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor
                )
                cursor.removeSelectedText()
            cursor.insertText(part)
        if following:
            bar.setValue(bar.maximum())
