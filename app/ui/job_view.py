"""The selected job: live charts, alerts, log output and the config it ran with.

Charts and their data are built on first use: pyqtgraph and numpy take about half a second to
import, which would otherwise come before the first paint of the window (bench/startup.py). The
Try tab too: its chat and prompt-set modules took a fifth of the start-up time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.alerts_view import AlertsView
from app.ui.jobs_model import JobRecord, fmt_duration
from app.ui.log_view import LogView

if TYPE_CHECKING:
    from app.ui.chart_data import ChartData
    from app.ui.charts import ChartsView
    from app.ui.try_tab import TryTab


class JobView(QWidget):
    TABS = ("Charts", "Alerts", "Log", "Config", "Try")
    # "Retry with less memory" on a job that ran out of GPU memory: the job's id
    retry_less_memory = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("jobView")
        self._chart_data: ChartData | None = None
        self.job: JobRecord | None = None
        self._charts: ChartsView | None = None
        self._overlay: list[tuple[str, str]] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        head = QHBoxLayout()
        self.title = QLabel("No job selected", self)
        self.title.setObjectName("jobTitle")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel("", self)
        self.subtitle.setObjectName("jobSubtitle")
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a cloud job's phase and money so far ("training · $0.42 of $10.00 · $0.69/h")
        self.meter = QLabel("", self)
        self.meter.setObjectName("costMeter")
        self.meter.hide()
        self.meter_source: Callable[[str], str | None] | None = None
        # the planner's estimate of the peak GPU memory beside the peak measured (plan_records)
        self.memory = QLabel("", self)
        self.memory.setObjectName("memoryLine")
        self.memory.hide()
        self.memory_source: Callable[[str], str | None] | None = None
        self.retry_button = QPushButton("Retry with less memory", self)
        self.retry_button.setObjectName("retryLessMemory")
        self.retry_button.setToolTip(
            "A new run with the same config and the first memory saving applied "
            "(smaller batch, checkpointing, 4-bit base, shorter rows)"
        )
        self.retry_button.hide()
        self.retry_button.clicked.connect(
            lambda: self.job is not None and self.retry_less_memory.emit(self.job.id)
        )
        titles = QVBoxLayout()
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        titles.addWidget(self.meter)
        titles.addWidget(self.memory)
        head.addLayout(titles, 1)
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.retry_button)
        head.addLayout(self.buttons)
        layout.addLayout(head)

        self.tabs = QTabWidget(self)
        self.charts_host = QWidget(self.tabs)
        self._charts_layout = QVBoxLayout(self.charts_host)
        self._charts_layout.setContentsMargins(0, 0, 0, 0)
        self.charts_placeholder = QLabel("Charts load…", self.charts_host)
        self.charts_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._charts_layout.addWidget(self.charts_placeholder)
        self.alerts = AlertsView(self.tabs)
        self.log = LogView(self.tabs)
        self.config = QPlainTextEdit(self.tabs)
        self.config.setObjectName("configView")
        self.config.setReadOnly(True)
        self.config.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.config.font().setStyleHint(QFont.StyleHint.Monospace)
        # chat with a finished job's model (app.ui.try_tab, built on first use: ``try_tab``)
        self.try_host = QWidget(self.tabs)
        self._try_layout = QVBoxLayout(self.try_host)
        self._try_layout.setContentsMargins(0, 0, 0, 0)
        self._try_tab: TryTab | None = None
        for widget, name in zip(
            (self.charts_host, self.alerts, self.log, self.config, self.try_host),
            self.TABS,
            strict=True,
        ):
            self.tabs.addTab(widget, name)
        layout.addWidget(self.tabs, 1)
        self.tabs.currentChanged.connect(self._tab_changed)
        # a running job's duration in the header moves on with the clock
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

    def add_action_button(self, action: QAction) -> QToolButton:
        button = QToolButton(self)
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.buttons.addWidget(button)
        return button

    # -- charts (built on first use) ------------------------------------------------------------

    @property
    def chart_data(self) -> ChartData:
        """Every loaded job's metric series (numpy: loaded on first use, after the paint)."""
        if self._chart_data is None:
            from app.ui.chart_data import ChartData

            self._chart_data = ChartData()
        return self._chart_data

    @property
    def charts(self) -> ChartsView:
        if self._charts is None:
            from app.ui.charts import ChartsView  # on first use: see the docstring

            self._charts = ChartsView(self.chart_data, self.charts_host)
            self.charts_placeholder.hide()
            self._charts_layout.addWidget(self._charts)
            self._charts.set_jobs(self._overlay)
        return self._charts

    def charts_built(self) -> bool:
        return self._charts is not None

    @property
    def try_tab(self) -> TryTab:
        """The Try tab (built on first use: see the docstring); ``attach`` tells it where the
        models come from."""
        if self._try_tab is None:
            from app.ui.try_tab import TryTab

            self._try_tab = TryTab(self.try_host)
            self._try_layout.addWidget(self._try_tab)
            self._try_tab.show_job(self.job.id if self.job is not None else None)
        return self._try_tab

    def _tab_changed(self, index: int) -> None:
        if self.TABS[index] == "Charts":
            _ = self.charts
        elif self.TABS[index] == "Try":
            _ = self.try_tab

    # -- what is shown --------------------------------------------------------------------------

    def show_job(
        self,
        job: JobRecord | None,
        overlay: Iterable[JobRecord] = (),
        *,
        alerts: Iterable[dict[str, Any]] = (),
        log_text: str = "",
        config: dict[str, Any] | None = None,
    ) -> None:
        """Show a job; ``overlay`` are the jobs whose charts are drawn together (it included)."""
        self.job = job
        self._overlay = [(j.id, j.name) for j in overlay]
        if job is None:
            self.update_meter()
            self.update_memory()
            self.retry_button.hide()
            self.title.setText("No job selected")
            self.subtitle.setText("Start one with Run ▸ New run… (Ctrl+N).")
            self.alerts.alerts.reset([])
            self.log.set_text("")
            self.config.setPlainText("")
        else:
            self.update_header(job)
            # not on every tick: it reads the store; new GPU figures update it (metrics_arrived)
            self.update_memory()
            self.alerts.alerts.reset(alerts)
            self._update_retry()
            self.log.set_text(log_text)
            self.config.setPlainText(json.dumps(config, indent=2) if config else "")
        if self._charts is not None or self.tabs.currentIndex() == 0:
            self.charts.set_jobs(self._overlay)
        if self._try_tab is not None:
            self._try_tab.show_job(job.id if job is not None else None)

    def update_header(self, job: JobRecord) -> None:
        if self.job is None or job.id != self.job.id:
            return
        self.job = job
        if self._try_tab is not None:
            self._try_tab.job_changed(job.id, job.status)
        self.title.setText(job.name)
        parts = [job.method.upper(), job.model, job.status]
        if job.started_at is not None:
            end = job.finished_at
            parts.append(fmt_duration((end or time.time()) - job.started_at))
        if job.final_loss is not None:
            parts.append(f"final loss {job.final_loss:.4f}")
        self.subtitle.setText(" · ".join(parts) + f"   ({job.id})")
        self.update_meter()

    def update_memory(self) -> None:
        line = None
        if self.job is not None and self.memory_source is not None:
            line = self.memory_source(self.job.id)
        self.memory.setText(line or "")
        self.memory.setVisible(bool(line))

    def _update_retry(self) -> None:
        model = self.alerts.alerts
        oom = any(model.alert(row).get("type") == "gpu_oom" for row in range(model.row_count()))
        self.retry_button.setVisible(self.job is not None and oom)

    def update_meter(self) -> None:
        line = None
        if self.job is not None and self.meter_source is not None:
            line = self.meter_source(self.job.id)
        self.meter.setText(f"RunPod: {line}" if line else "")
        self.meter.setVisible(bool(line))

    def _tick(self) -> None:
        job = self.job
        if job is not None and job.started_at is not None and job.finished_at is None:
            self.update_header(job)
        elif job is not None and self.meter.isVisible():
            self.update_meter()  # a pod bills before the trainer starts and after it ends

    def overlay_ids(self) -> list[str]:
        return [job_id for job_id, _ in self._overlay]

    def metrics_arrived(self, job_id: str, metrics: Iterable[str]) -> None:
        metrics = list(metrics)
        if self._charts is not None:
            self._charts.data_changed(job_id, metrics)
        if self.job is not None and job_id == self.job.id and "gpu_memory_allocated_gb" in metrics:
            self.update_memory()

    def alert_arrived(self, job_id: str, alert: dict[str, Any]) -> None:
        if self.job is not None and job_id == self.job.id:
            self.alerts.alerts.append(alert)
            self._update_retry()

    def output_arrived(self, job_id: str, text: str) -> None:
        if self.job is not None and job_id == self.job.id:
            self.log.append_output(text)
