"""The job list: a table model over the store's jobs, and the filter the list view reads through.

The store is the state; this model only mirrors it. ``reload()`` reads every job (start-up, after
a delete), ``refresh(job_id)`` re-reads one row when the bridge says it changed, so a running
job's status, duration and final loss update in place without losing the selection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

from app.core.jobs import format_duration
from app.ui.table_model import ColumnsTableModel

_Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Name", "Method", "Model", "Where", "Status", "Started", "Duration", "Final loss")
STATUS_COLOURS = {
    "running": "#1f6fb2",
    "starting": "#1f6fb2",
    "completed": "#2e7d32",
    "failed": "#c0392b",
    "cancelled": "#7f8c8d",
}
WHERE_TITLES = {"local": "Local", "runpod": "RunPod"}
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2


class JobRecord(Protocol):
    """What the list shows of a job (``app.core.store.Job`` has these)."""

    id: str
    name: str
    method: str
    model: str
    target: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    final_loss: float | None


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    when = datetime.fromtimestamp(ts)
    today = datetime.now().date()
    return when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M")


def fmt_duration(seconds: float | None) -> str:
    return "" if seconds is None else format_duration(seconds)


def duration_of(job: JobRecord, now: float | None = None) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at if job.finished_at is not None else (now or time.time())
    return end - job.started_at


def is_active(job: JobRecord) -> bool:
    return job.finished_at is None and job.status in ("running", "starting", "queued")


class JobsModel(ColumnsTableModel):
    """Rows are jobs, newest first."""

    columns = COLUMNS

    def __init__(
        self,
        list_jobs: Callable[[], Sequence[JobRecord]],
        get_job: Callable[[str], JobRecord | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._list_jobs = list_jobs
        self._get_job = get_job
        self._jobs: list[JobRecord] = []
        # running jobs' durations tick once a second
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

    # -- reading the store ----------------------------------------------------------------------

    def reload(self) -> None:
        self.beginResetModel()
        self._jobs = sorted(self._list_jobs(), key=lambda j: j.created_at, reverse=True)
        self.endResetModel()

    def refresh(self, job_id: str) -> None:
        job = self._get_job(job_id)
        row = self.row_of(job_id)
        if job is None:
            if row is not None:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._jobs[row]
                self.endRemoveRows()
            return
        if row is None:
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._jobs.insert(0, job)
            self.endInsertRows()
        else:
            self._jobs[row] = job
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def row_of(self, job_id: str) -> int | None:
        return next((i for i, j in enumerate(self._jobs) if j.id == job_id), None)

    def job(self, row: int) -> JobRecord:
        return self._jobs[row]

    def job_by_id(self, job_id: str) -> JobRecord | None:
        row = self.row_of(job_id)
        return None if row is None else self._jobs[row]

    def jobs(self) -> list[JobRecord]:
        return list(self._jobs)

    def _tick(self) -> None:
        col = COLUMNS.index("Duration")
        for row, job in enumerate(self._jobs):
            if is_active(job):
                index = self.index(row, col)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole])

    # -- Qt model -------------------------------------------------------------------------------

    def row_count(self) -> int:
        return len(self._jobs)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self._jobs[index.row()]
        column = COLUMNS[index.column()]
        if role == JOB_ID_ROLE:
            return job.id
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(job, column)
        if role == SORT_ROLE:
            return self._sort_key(job, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == "Status":
            colour = STATUS_COLOURS.get(job.status)
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{job.name} ({job.id})\n{job.model}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in ("Duration", "Final loss"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(job: JobRecord, column: str) -> str:
        if column == "Name":
            return job.name
        if column == "Method":
            return job.method.upper()
        if column == "Model":
            return job.model
        if column == "Where":
            return WHERE_TITLES.get(job.target, job.target)
        if column == "Status":
            return job.status
        if column == "Started":
            return _fmt_time(job.started_at or job.created_at)
        if column == "Duration":
            return fmt_duration(duration_of(job))
        if column == "Final loss":
            return "" if job.final_loss is None else f"{job.final_loss:.4f}"
        return ""

    @staticmethod
    def _sort_key(job: JobRecord, column: str) -> Any:
        if column == "Started":
            return job.started_at or job.created_at
        if column == "Duration":
            return duration_of(job) or 0.0
        if column == "Final loss":
            return job.final_loss if job.final_loss is not None else float("inf")
        return JobsModel._display(job, column).lower()


class JobsFilter(QSortFilterProxyModel):
    """Search text (name, method, model, id) and a status filter over the jobs model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._status: str | None = None
        self.setSortRole(SORT_ROLE)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_status(self, status: str | None) -> None:
        self.beginFilterChange()
        self._status = status or None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, JobsModel):
            return True
        job = model.job(source_row)
        if self._status is not None and job.status != self._status:
            return False
        if not self._text:
            return True
        haystack = " ".join((job.name, job.method, job.model, job.id, job.target)).lower()
        return all(word in haystack for word in self._text.split())
