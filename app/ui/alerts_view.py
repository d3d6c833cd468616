"""A job's alerts: the in-app record of every alert, notified or not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from app.ui.table_model import ColumnsTableModel

_Index = QModelIndex | QPersistentModelIndex
SEVERE = frozenset({"job_failed", "gpu_oom", "loss_nan"})
WARNING = frozenset({"timeout_warning", "loss_spike", "stalled", "budget_warning"})
COLUMNS = ("Time", "Alert", "Details")


def alert_details(alert: Mapping[str, Any]) -> str:
    """What happened and what to do, worded (and redacted) as the notification is."""
    from app.core.notifications import format_alert  # pydantic: not before first paint

    return format_alert(alert).body


def _when(alert: Mapping[str, Any]) -> str:
    raw = alert.get("received_at") or alert.get("timestamp") or alert.get("created_at")
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(raw).strftime("%H:%M:%S")
    if isinstance(raw, str):
        try:
            return (
                datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
            )
        except ValueError:
            return raw
    return ""


class AlertsModel(ColumnsTableModel):
    columns = COLUMNS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._alerts: list[Mapping[str, Any]] = []

    def reset(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        self.beginResetModel()
        self._alerts = list(alerts)
        self.endResetModel()

    def append(self, alert: Mapping[str, Any]) -> None:
        row = len(self._alerts)
        self.beginInsertRows(QModelIndex(), row, row)
        self._alerts.append(alert)
        self.endInsertRows()

    def alert(self, row: int) -> Mapping[str, Any]:
        return self._alerts[row]

    def row_count(self) -> int:
        return len(self._alerts)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        alert = self._alerts[index.row()]
        kind = str(alert.get("type", ""))
        if role == Qt.ItemDataRole.DisplayRole:
            from app.core.notifications import alert_title

            return (_when(alert), alert_title(kind), alert_details(alert))[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return alert_details(alert) or kind
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 1:
            if kind in SEVERE:
                return QColor("#c0392b")
            if kind in WARNING:
                return QColor("#b9770e")
        return None


class AlertsView(QTableView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alertsView")
        self.alerts = AlertsModel(self)
        self.setModel(self.alerts)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
