"""Cloud pods that bill with no running job to show for it, each with one-click terminate.

Opened from File ▸ Cloud pods… and at start-up when RunPod reports such pods. The dialog only
shows and asks: listing and terminating are the core's (``app.core.runpod.orphans``), handed in
as two coroutines, run on the app's asyncio loop (qasync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.runpod.orphans import Orphan

ListOrphans = Callable[[], Awaitable[Sequence[Orphan]]]
TerminatePod = Callable[[str], Awaitable[None]]
COLUMNS = ("Pod", "Name", "Status", "$/hour", "Why it is listed", "")


class PodsDialog(QDialog):
    def __init__(
        self, list_orphans: ListOrphans, terminate: TerminatePod, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cloud pods")
        self.setObjectName("podsDialog")
        self._list = list_orphans
        self._terminate = terminate
        self._tasks: set[asyncio.Task[Any]] = set()
        self.orphans: list[Orphan] = []
        layout = QVBoxLayout(self)
        self.summary = QLabel("Asking RunPod…", self)
        self.summary.setObjectName("podsSummary")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("podsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().hide()
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(self)
        self.refresh_button = buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole)
        self.terminate_all_button = buttons.addButton(
            "Terminate all made by Tunedeck", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.terminate_all_button.setObjectName("terminateAll")
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.refresh_button.clicked.connect(lambda: self._spawn(self.refresh()))
        self.terminate_all_button.clicked.connect(lambda: self._spawn(self.terminate_all()))
        layout.addWidget(buttons)
        self.resize(820, 320)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh(self) -> list[Orphan]:
        self.refresh_button.setEnabled(False)
        try:
            self.orphans = list(await self._list())
        except Exception as err:  # shown, not raised: the dialog stays usable
            self.summary.setText(f"Could not list the pods: {err}")
            return self.orphans
        finally:
            self.refresh_button.setEnabled(True)
        self._show()
        return self.orphans

    def _show(self) -> None:
        self.table.setRowCount(len(self.orphans))
        for row, orphan in enumerate(self.orphans):
            pod = orphan.pod
            cells = (pod.id, pod.name, pod.status, f"{pod.cost_per_hour:.2f}", orphan.reason)
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
            button = QPushButton("Terminate", self.table)
            button.setObjectName(f"terminate:{pod.id}")
            button.clicked.connect(lambda _=False, p=pod.id: self._spawn(self.terminate(p)))
            self.table.setCellWidget(row, len(COLUMNS) - 1, button)
        per_hour = sum(o.pod.cost_per_hour for o in self.orphans)
        if self.orphans:
            self.summary.setText(
                f"{len(self.orphans)} pod(s) bill ${per_hour:.2f} an hour with no running "
                "Tunedeck job. Terminating a pod deletes its disk (a network volume stays)."
            )
        else:
            self.summary.setText("No pod bills without a running Tunedeck job.")
        self.terminate_all_button.setEnabled(any(o.made_by_tunedeck for o in self.orphans))

    async def terminate(self, pod_id: str) -> None:
        try:
            await self._terminate(pod_id)
        except Exception as err:
            self.summary.setText(f"Could not terminate {pod_id}: {err}")
            return
        self.orphans = [o for o in self.orphans if o.pod.id != pod_id]
        self._show()

    async def terminate_all(self) -> None:
        for orphan in [o for o in self.orphans if o.made_by_tunedeck]:
            await self.terminate(orphan.pod.id)
