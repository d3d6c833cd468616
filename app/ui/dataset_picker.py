"""The dataset field of the run form: a path (or URL, or Hub id) and what is in it.

After each edit (debounced) and each change of method, ``trainer.data.inspect.inspect_dataset``
reads every row off the GUI thread and the picker shows the detected format, the row count, any
problem with its line numbers, and the first rows. A Hub dataset is not read here (that needs the
``datasets`` library, which the GUI process never loads); the trainer checks it before the model
loads. "Doctor" beside the preview runs the dataset doctor on the form's whole config in the
trainer's environment (app.ui.doctor_view).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QWidget,
)

from app.ui.bridge import Bridge
from app.ui.doctor_view import DoctorView
from app.ui.field_editors import FieldEditor, PathEditor
from app.ui.schema_fields import FieldSpec
from trainer.data.inspect import DatasetReport, inspect_dataset

_Index = QModelIndex | QPersistentModelIndex
DEBOUNCE_MS = 350
PREVIEW_ROWS = 5
CELL_CHARS = 120


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


class PreviewModel(QAbstractTableModel):
    """The first rows of a dataset, one column per field."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] = []

    def reset(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        self.beginResetModel()
        self._rows = rows
        self._columns = columns or sorted({k for r in rows for k in r})
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section]
        return str(section + 1)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        value = self._rows[index.row()].get(self._columns[index.column()])
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if value is None else _cell(value)
        if role == Qt.ItemDataRole.ToolTipRole and value is not None:
            full = value if isinstance(value, str) else json.dumps(value, indent=1)
            return full[:2000]
        return None


class DatasetPicker(PathEditor):
    """A PathEditor for ``dataset.path`` with the inspection report underneath."""

    inspected = Signal(object)  # the DatasetReport shown

    @staticmethod
    def factory(spec: FieldSpec, parent: QWidget | None = None) -> FieldEditor:
        return DatasetPicker(spec, parent)

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.setObjectName("datasetPicker")
        self.method = "sft"
        self.report: DatasetReport | None = None
        self.base_dir = Path.cwd()  # where relative paths point: the trainer's working folder
        self._bridge = Bridge(self)
        self._generation = 0
        self._running = 0

        column = self.column_
        self.summary = QLabel("", self)
        self.summary.setObjectName("datasetSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems = QLabel("", self)
        self.problems.setObjectName("fieldError")
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems.hide()
        self.preview_model = PreviewModel(self)
        self.preview = QTableView(self)
        self.preview.setObjectName("datasetPreview")
        self.preview.setModel(self.preview_model)
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.setWordWrap(False)
        self.preview.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.preview.setMaximumHeight(150)
        self.preview.hide()
        self.doctor_button = QPushButton("Doctor: what will the model learn?", self)
        self.doctor_button.setObjectName("doctorButton")
        self.doctor_button.setToolTip(
            "Render rows through the model's chat template as the trainer will: trained and "
            "masked tokens, truncation, lengths, duplicates and other problems"
        )
        self.doctor_button.clicked.connect(self.run_doctor)
        self.doctor: DoctorView | None = None  # made on first use
        for widget in (self.summary, self.problems, self.preview, self.doctor_button):
            column.addWidget(widget)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.inspect_now)
        self.edited.connect(self._debounce.start)

    # -- inspection -----------------------------------------------------------------------------

    def set_value(self, value: Any) -> None:
        before = self.line.text()
        super().set_value(value)
        if self.line.text() != before:
            self._debounce.start()

    def set_method(self, method: str) -> None:
        if method != self.method:
            self.method = method
            self._debounce.start()

    @property
    def busy(self) -> bool:
        return self._running > 0 or self._debounce.isActive()

    def inspect_now(self) -> None:
        self._debounce.stop()
        source = self.line.text().strip()
        self._generation += 1
        if not source:
            self._show(None)
            return
        generation, method, base = self._generation, self.method, self.base_dir
        self.summary.setText(f"Reading {source}…")
        self._running += 1

        def work() -> None:
            try:
                report = inspect_dataset(source, method, base_dir=base, preview=PREVIEW_ROWS)
            except Exception as err:  # inspect reports data problems; this is a bug or I/O
                report = DatasetReport(source, problems=[f"could not inspect: {err}"])
            self._bridge.post(self._done, generation, report)

        threading.Thread(target=work, name="dataset-inspect", daemon=True).start()

    def form_config(self) -> dict[str, Any]:
        """The run config of the form this picker is in (validated when it validates)."""
        from trainer.config import ConfigError

        holder = self.parentWidget()
        while holder is not None and not hasattr(holder, "config_dict"):
            holder = holder.parentWidget()
        if holder is None:
            return {"method": self.method, "dataset": {"path": self.line.text().strip()}}
        try:
            return dict(holder.config().model_dump(mode="json"))  # type: ignore[attr-defined]
        except ConfigError:
            return dict(holder.config_dict())

    def run_doctor(self) -> None:
        if self.doctor is None:
            # its Python is launch_python's at each start: a training environment set up
            # while this form is open is used by the next click
            self.doctor = DoctorView(self, cwd=self.base_dir)
            self.doctor.setMinimumHeight(320)
            self.column_.addWidget(self.doctor)
            closing = getattr(self.window(), "finished", None)  # the run dialog closes
            if closing is not None:
                closing.connect(self.doctor.shutdown)
        self.doctor.show()
        self.doctor.start(self.form_config())

    def _done(self, generation: int, report: DatasetReport) -> None:
        self._running -= 1
        if generation == self._generation:  # an older answer for an earlier path: dropped
            self._show(report)

    def _show(self, report: DatasetReport | None) -> None:
        self.report = report
        if report is None:
            self.summary.setText("")
            self.problems.hide()
            self.preview.hide()
            return
        if not report.checked:
            self.summary.setText(f"Not read here. {report.hint}")
        else:
            parts = [f"{report.num_rows:,} rows"]
            if report.fmt:
                parts.insert(0, f"format: {report.fmt}")
            if report.ok:
                made = report.num_examples
                parts.append(
                    f"ok for {report.method}"
                    + (f" ({made:,} examples)" if made not in (None, report.num_rows) else "")
                )
            self.summary.setText(" · ".join(parts))
        lines = list(report.problems)
        if report.hint and not report.ok and report.checked:
            lines.append(f"Hint: {report.hint}")
        self.problems.setText("\n".join(lines))
        self.problems.setVisible(bool(lines))
        self.preview_model.reset(report.preview, report.columns)
        self.preview.setVisible(bool(report.preview))
        self.inspected.emit(report)
