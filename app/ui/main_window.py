"""The main window: the job list beside the selected job's view, menus, shortcuts.

Built in two steps so that it paints at once: the constructor makes only widgets; ``attach``
connects the core (store, launchers, bridge) once the app has started it, after the first paint.
Selecting several jobs overlays their charts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.ui.about import show_about
from app.ui.bridge import Bridge
from app.ui.job_service import JobService
from app.ui.job_view import JobView
from app.ui.jobs_model import JOB_ID_ROLE, JobRecord, JobsFilter, JobsModel, is_active
from app.ui.presets import PresetLibrary

if TYPE_CHECKING:
    import asyncio

    from app.ui.chart_data import ChartData

log = logging.getLogger(__name__)

STATUS_FILTERS = ("", "running", "completed", "failed", "cancelled")
RESUMABLE = frozenset({"cancelled", "failed"})


class MainWindow(QMainWindow):
    """``settings_requested`` asks the app to open Settings (it owns settings and credentials)."""

    settings_requested = Signal()
    pods_requested = Signal()  # File ▸ Cloud pods…: the app lists pods billing without a job

    def __init__(self, presets: PresetLibrary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tunedeck")
        self.setObjectName("mainWindow")
        self.resize(1280, 800)
        self.presets = presets
        self.service: JobService | None = None
        self.bridge: Bridge | None = None
        self.dialog: Any = None  # the open New Run dialog, if any
        self._tasks: set[asyncio.Task[Any]] = set()
        self._build_actions()
        self._build_menus()
        self._build_body()
        self._update_actions()
        self.statusBar().showMessage("Starting…")

    # -- building -------------------------------------------------------------------------------

    def _action(
        self, text: str, shortcut: QKeySequence | str | None, slot: Callable[[], Any], tip: str
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        keys = QKeySequence.StandardKey
        self.new_run_action = self._action(
            "&New run…", QKeySequence(keys.New), self.new_run, "Fill in a run and launch it"
        )
        self.open_config_action = self._action(
            "&Open config…", QKeySequence(keys.Open), self.open_config, "Start a run from a file"
        )
        self.settings_action = self._action(
            "&Settings…",
            QKeySequence(keys.Preferences)
            if not QKeySequence(keys.Preferences).isEmpty()
            else "Ctrl+,",
            self.settings_requested.emit,
            "Credentials, receiver, notifications, training Python",
        )
        self.pods_action = self._action(
            "Cloud &pods…",
            None,
            self.pods_requested.emit,
            "RunPod pods that bill without a running job, with one-click terminate",
        )
        self.quit_action = self._action("&Quit", QKeySequence(keys.Quit), self.close, "Quit")
        if self.quit_action.shortcut().isEmpty():
            self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.cancel_action = self._action(
            "&Cancel run", "Ctrl+.", self.cancel_selected, "Stop the run cleanly (checkpoint)"
        )
        self.resume_action = self._action(
            "&Resume", "Ctrl+R", self.resume_selected, "Continue from the last checkpoint"
        )
        self.duplicate_action = self._action(
            "&Duplicate as new run…", "Ctrl+D", self.duplicate_selected, "Same config, new run"
        )
        self.delete_action = self._action(
            "&Delete", QKeySequence(keys.Delete), self.delete_selected, "Remove from history"
        )
        self.about_action = self._action("&About Tunedeck", None, self.about, "About")
        self.export_action = self._action(
            "E&xport model…",
            "Ctrl+E",
            self.export_selected,
            "Merged safetensors, GGUF for llama.cpp/Ollama, or the Hugging Face Hub",
        )

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for action in (self.new_run_action, self.open_config_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addAction(self.pods_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        for action in self._job_actions():
            run_menu.addAction(action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.addAction(self.new_run_action)
        toolbar.addSeparator()
        for action in (self.cancel_action, self.resume_action, self.duplicate_action):
            toolbar.addAction(action)

    def _job_actions(self) -> list[QAction]:
        return [
            self.cancel_action,
            self.resume_action,
            self.duplicate_action,
            self.export_action,
            self.delete_action,
        ]

    def _build_body(self) -> None:
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(4, 4, 0, 4)
        filters = QHBoxLayout()
        self.search = QLineEdit(left)
        self.search.setObjectName("jobSearch")
        self.search.setPlaceholderText("Search jobs (name, method, model)")
        self.search.setClearButtonEnabled(True)
        self.status_filter = QComboBox(left)
        self.status_filter.setObjectName("statusFilter")
        for status in STATUS_FILTERS:
            self.status_filter.addItem(status.capitalize() if status else "All", status)
        filters.addWidget(self.search, 1)
        filters.addWidget(self.status_filter)
        left_layout.addLayout(filters)

        self.jobs = JobsModel(self._list_jobs, self._get_job, self)
        self.filter = JobsFilter(self)
        self.filter.setSourceModel(self.jobs)
        self.table = QTableView(left)
        self.table.setObjectName("jobTable")
        self.table.setModel(self.filter)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((112, 50, 100, 46, 74, 64, 58, 60)):
            self.table.setColumnWidth(column, width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        left_layout.addWidget(self.table, 1)
        self.empty_hint = QLabel("No runs yet. Ctrl+N starts one.", left)
        self.empty_hint.setObjectName("jobsEmpty")
        left_layout.addWidget(self.empty_hint)

        self.job_view = JobView(self)
        self.job_view.retry_less_memory.connect(self.retry_with_less_memory)
        for action in (
            self.cancel_action,
            self.resume_action,
            self.duplicate_action,
            self.export_action,
        ):
            self.job_view.add_action_button(action)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(self.job_view)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([640, 640])
        self.setCentralWidget(splitter)

        self.search.textChanged.connect(self.filter.set_text)
        self.status_filter.currentIndexChanged.connect(
            lambda _: self.filter.set_status(self.status_filter.currentData())
        )
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.jobs.modelReset.connect(self._update_empty_hint)
        self.jobs.rowsInserted.connect(self._update_empty_hint)
        self.jobs.rowsRemoved.connect(self._update_empty_hint)

    @property
    def chart_data(self) -> ChartData:
        return self.job_view.chart_data

    # -- the core -------------------------------------------------------------------------------

    def attach(self, service: JobService, bridge: Bridge) -> None:
        """Connect the started core: read the history, follow what happens from now on."""
        self.service = service
        self.bridge = bridge
        bridge.metrics_received.connect(self._metrics_received)
        bridge.alert_received.connect(self._alert_received)
        bridge.job_changed.connect(self.refresh_job)
        bridge.output_received.connect(self.job_view.output_arrived)
        bridge.job_exited.connect(lambda job_id, _code: self.refresh_job(job_id))
        self.jobs.reload()
        if self.jobs.rowCount():
            self.select_job(self.jobs.job(0).id)
        self._update_actions()
        self.statusBar().showMessage("Ready", 3000)

    def _list_jobs(self) -> list[JobRecord]:
        return list(self.service.list_jobs()) if self.service else []

    def _get_job(self, job_id: str) -> JobRecord | None:
        return self.service.get_job(job_id) if self.service else None

    def _metrics_received(self, job_id: str, points: list[dict[str, Any]]) -> None:
        if not self.chart_data.has(job_id):
            return  # not loaded: its history is read from the store when it is selected
        changed = self.chart_data.add_points(job_id, points)
        if changed:
            self.job_view.metrics_arrived(job_id, changed)

    def _alert_received(self, job_id: str, alert: dict[str, Any]) -> None:
        self.job_view.alert_arrived(job_id, alert)
        self.refresh_job(job_id)

    def refresh_job(self, job_id: str) -> None:
        self.jobs.refresh(job_id)
        job = self.jobs.job_by_id(job_id)
        if job is not None:
            self.job_view.update_header(job)
        self._update_actions()

    # -- selection ------------------------------------------------------------------------------

    def selected_ids(self) -> list[str]:
        rows = self.table.selectionModel().selectedRows()
        return [str(index.data(JOB_ID_ROLE)) for index in rows]

    def current_job(self) -> JobRecord | None:
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            ids = self.selected_ids()
            return self.jobs.job_by_id(ids[0]) if ids else None
        return self.jobs.job_by_id(str(index.siblingAtColumn(0).data(JOB_ID_ROLE)))

    def select_job(self, job_id: str) -> None:
        row = self.jobs.row_of(job_id)
        if row is None:
            return
        index = self.filter.mapFromSource(self.jobs.index(row, 0))
        if not index.isValid():  # hidden by the filter: clear it so the new job shows
            self.search.clear()
            self.status_filter.setCurrentIndex(0)
            index = self.filter.mapFromSource(self.jobs.index(row, 0))
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.selectionModel().setCurrentIndex(index, flags)
        self.table.scrollTo(index)

    def _selection_changed(self, *_: Any) -> None:
        self._show_selection()
        self._update_actions()

    def _show_selection(self) -> None:
        job = self.current_job()
        if job is None or self.service is None:
            self.job_view.show_job(None)
            return
        overlay_ids = self.selected_ids() or [job.id]
        if job.id in overlay_ids:  # the current job first: its colour is the first one
            overlay_ids.remove(job.id)
        overlay_ids.insert(0, job.id)
        overlay = [j for j in (self.jobs.job_by_id(i) for i in overlay_ids) if j is not None]
        for item in overlay:
            if not self.chart_data.has(item.id):
                self.chart_data.add_points(item.id, self.service.metrics(item.id))
        self.job_view.show_job(
            job,
            overlay,
            alerts=self.service.alerts(job.id),
            log_text=self.service.log_text(job.id),
            config=self.service.config(job.id),
        )

    def _update_actions(self) -> None:
        job = self.current_job()
        attached = self.service is not None
        self.new_run_action.setEnabled(attached)
        self.open_config_action.setEnabled(attached)
        self.cancel_action.setEnabled(attached and job is not None and is_active(job))
        # a trainer may still be saving after its final alert: wait for the process to end
        ended = job is not None and not is_active(job) and not self._alive(job.id)
        resumable = job is not None and job.status in RESUMABLE
        self.resume_action.setEnabled(attached and ended and resumable)
        self.duplicate_action.setEnabled(attached and job is not None)
        self.delete_action.setEnabled(attached and ended)
        finished = job is not None and job.status in ("completed", "cancelled", "failed")
        self.export_action.setEnabled(attached and ended and finished)

    def _alive(self, job_id: str) -> bool:
        return self.service is not None and self.service.process_alive(job_id)

    def _update_empty_hint(self, *_: Any) -> None:
        self.empty_hint.setVisible(self.jobs.rowCount() == 0)

    def _context_menu(self, pos: Any) -> None:
        if not self.table.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        for action in self._job_actions():
            menu.addAction(action)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    # -- commands -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run a core coroutine on the loop; say so in the window when it fails."""
        import asyncio  # after the first paint (bench/startup.py)

        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._failed(what, t.exception())

        task.add_done_callback(done)

    def _failed(self, what: str, err: BaseException | None) -> None:
        lines = getattr(err, "problems", None)
        message = "\n".join(lines) if lines else str(err)
        hint = getattr(err, "hint", None)
        if hint:
            message += f"\n\n{hint}"
        if not lines and not hint:
            log.error("%s failed", what, exc_info=err)
        QMessageBox.warning(self, f"Could not {what}", message)

    def run_dialog(self, data: dict[str, Any] | None = None) -> Any:
        """The New Run dialog, filled with ``data`` when given (not shown yet)."""
        from app.ui.dataset_picker import DatasetPicker  # the form pulls in pydantic: on use
        from app.ui.run_form import RunDialog

        targets = self.service.targets() if self.service else None
        # RunPod's live GPU catalog when the app has one (a key is stored), else the shipped table
        gpus, gpu_source = getattr(self.service, "gpu_choices", lambda: (None, ""))()
        dialog = RunDialog(
            self.presets,
            targets,
            overrides={"dataset.path": DatasetPicker.factory},
            parent=self,
            gpus=gpus,
            gpu_source=gpu_source,
        )
        if data is not None:
            dialog.load_config(data)
        dialog.launch_requested.connect(
            lambda config, target: self._spawn(self.launch(config, target), "start the run")
        )
        self.dialog = dialog
        return dialog

    def new_run(self) -> None:
        self.run_dialog().open()

    def open_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open config", "", "Config (*.json)")
        if path:
            dialog = self.run_dialog()
            if dialog.import_file(Path(path)):
                dialog.open()

    async def launch(self, config: Any, target: str) -> str:
        assert self.service is not None
        job_id = await self.service.launch(config, target)
        self.chart_data.job(job_id)  # follow its metrics from the first point
        self.refresh_job(job_id)
        self.select_job(job_id)
        self.statusBar().showMessage(f"Started {config.name}", 5000)
        return job_id

    def cancel_selected(self) -> None:
        job = self.current_job()
        if job is not None and self.service is not None and is_active(job):
            self.statusBar().showMessage(f"Stopping {job.name} (saving a checkpoint)…", 5000)
            self._spawn(self.service.cancel(job.id), "cancel the run")

    def resume_selected(self) -> None:
        job = self.current_job()
        if self.resume_action.isEnabled() and job is not None and self.service is not None:
            self.chart_data.forget(job.id)
            self.chart_data.add_points(job.id, self.service.metrics(job.id))
            self._spawn(self.service.resume(job.id), "resume the run")

    def duplicate_selected(self) -> None:
        job = self.current_job()
        if job is None or self.service is None:
            return
        config = dict(self.service.config(job.id) or {"method": job.method})
        config["name"] = _copy_name(str(config.get("name", job.name)))
        self.run_dialog(config).open()

    def retry_with_less_memory(self, job_id: str) -> None:
        """A job that ran out of GPU memory, duplicated with the planner's first memory saving
        applied and named in the dialog's title."""
        from app.core.plan_records import retry_config

        if self.service is None:
            return
        job = self.service.get_job(job_id)
        found = retry_config(self.service.config(job_id) or {}) if job else None
        if job is None or found is None:
            QMessageBox.information(
                self,
                "Retry with less memory",
                "Nothing in the config is left to reduce: choose a GPU with more memory.",
            )
            return
        data, change = found
        data["name"] = _copy_name(str(data.get("name", job.name)))
        dialog = self.run_dialog(data)
        dialog.setWindowTitle(f"New run — retry with less memory: {change}")
        dialog.open()

    def delete_selected(self) -> None:
        if self.service is None:
            return
        jobs = [j for j in (self.jobs.job_by_id(i) for i in self.selected_ids()) if j]
        jobs = [j for j in jobs if not is_active(j) and not self._alive(j.id)]
        if not jobs:
            return
        names = ", ".join(j.name for j in jobs[:5]) + (" …" if len(jobs) > 5 else "")
        answer = QMessageBox.question(
            self,
            "Delete from history",
            f"Delete {len(jobs)} job(s) from the history ({names})? "
            "Their metrics and alerts go too; output folders on disk are kept.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        for job in jobs:
            self.service.delete_job(job.id)
            self.chart_data.forget(job.id)
            self.jobs.refresh(job.id)
        self._show_selection()

    def export_selected(self) -> None:
        """The Export dialog for the current job (app/ui/export_dialog.py)."""
        record = self.current_job()
        job = self.service.get_job(record.id) if self.service and record else None
        from app.core.jobs import Job

        if not isinstance(job, Job):
            return
        from app.core.launcher import LaunchError
        from app.core.trainer_python import launch_python
        from app.ui.export_dialog import ExportDialog

        try:
            python = launch_python()
        except LaunchError as err:
            QMessageBox.warning(self, "Export", f"{err}\n\n{err.hint}")
            return

        def hub_token() -> str | None:
            from app.core.credentials import CredentialStore

            return CredentialStore().get("hf_token")

        dialog = ExportDialog(job, python=python, token_source=hub_token, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def about(self) -> None:
        show_about(self)

    def closeEvent(self, event: QCloseEvent) -> None:
        # local runs keep going without the window; the next start reattaches to them
        running = [j for j in self.jobs.jobs() if is_active(j)]
        if running:
            self.statusBar().showMessage(
                f"{len(running)} run(s) keep going; Tunedeck finds them again on its next start"
            )
        super().closeEvent(event)


def _copy_name(name: str) -> str:
    return name if name.endswith("-copy") else f"{name}-copy"
