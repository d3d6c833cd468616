"""Live charts: one pyqtgraph panel per family of metrics, several jobs overlaid.

Drawing a million points must stay inside a frame, so a curve is always handed a downsampled,
clipped-to-view copy of its series: ``Series.decimated`` keeps the min and max of each block of
points (peak downsampling, about a point a pixel) for the x window in view. That is what
pyqtgraph's own ``setDownsampling(mode="peak")`` and ``setClipToView`` do (``apply_fast_drawing``,
kept for bench/charts.py), but theirs redo every curve of a plot whenever its x range moves,
which a live chart following its data does every frame; ours redo only the curves whose data
changed, so the curves are plain curve items (``app.ui.chart_items.Line``), and the view
follows its data in steps rather than every frame (``FollowingViewBox``). Incoming points never
redraw anything by themselves: they start a single-shot timer, so however many batches arrive
in a frame the charts are redrawn once (``FRAME_MS``, stretched by ``FRAME_BUDGET_SHARE`` when
frames are costly), and not at all while the charts are hidden. The numbers live in
:class:`app.ui.chart_data.ChartData`; this module only draws them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg  # type: ignore[import-untyped]  # no stubs upstream
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGraphicsItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.ui.chart_data import ChartData, Panel, drawn, panel, panel_of
from app.ui.chart_items import FollowingViewBox, Line

FRAME_MS = 16
# Qt's raster engine draws a 1 px cosmetic line with its fast stroker; at 1.5 px each segment
# goes through the general one: 40 curves of 1,000 points took 40 ms instead of 8 ms here
LINE_WIDTH = 1
# the next frame waits at least this many times as long as the last one took (its redraw and
# its paints): drawing keeps at most about half of the GUI thread, which serves the receiver too
FRAME_BUDGET_SHARE = 1.0
# min/max blocks per pixel of the plot's width: a block every two pixels, so at most a point a
# pixel, every peak kept. A dense, noisy line costs its pixels to draw: with a block a pixel, 40
# overlaid curves took 3-4 ms more a frame, for a line that looked the same
BLOCKS_PER_PIXEL = 0.5
# Tableau 10: distinct on white and for the common kinds of colour blindness.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
DASHES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
X_MODES = {"step": "Step", "time": "Time (s)"}

pg.setConfigOptions(background="w", foreground="#333333", antialias=False)


def apply_fast_drawing(item: pg.PlotItem) -> None:
    """pyqtgraph's own peak downsampling and clip-to-view for a plot's PlotDataItems (the
    baseline in bench/charts.py): about five samples per pixel, keeping each bin's min and max so
    that spikes stay visible, and only the part in view."""
    item.setDownsampling(auto=True, mode="peak")
    item.setClipToView(True)


class PlotWidget(pg.PlotWidget):  # type: ignore[misc]  # pyqtgraph has no stubs
    """A pyqtgraph plot that reports what its paints cost, for the frame budget."""

    def __init__(self, parent: QWidget | None = None, on_paint: Any = None) -> None:
        super().__init__(parent=parent, viewBox=FollowingViewBox())
        self._on_paint = on_paint

    def paintEvent(self, event: QPaintEvent) -> None:  # Qt's name
        began = time.perf_counter()
        super().paintEvent(event)
        if self._on_paint is not None:
            self._on_paint(time.perf_counter() - began)


def make_plot(panel: Panel, parent: QWidget | None = None, on_paint: Any = None) -> PlotWidget:
    plot = PlotWidget(parent=parent, on_paint=on_paint)
    plot.setObjectName(f"chart:{panel.key}")
    item = plot.getPlotItem()
    item.setTitle(panel.title)
    item.showGrid(x=True, y=True, alpha=0.2)
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        axis.setStyle(maxTickLevel=0)
        # an axis (its ticks, labels and grid lines) changes only when the view moves, which a
        # followed view does now and then: between, Qt paints it from a pixmap
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    item.setLabel("bottom", "step")
    if panel.unit:
        item.setLabel("left", panel.unit)
    # no fill: a filled legend box (pyqtgraph's default takes the background colour) hides the
    # part of a curve that runs beneath it
    item.addLegend(offset=(-10, 10), labelTextSize="8pt", brush=pg.mkBrush(0, 0, 0, 0))
    item.setMenuEnabled(False)
    plot.setMinimumHeight(180)
    return plot


class _Curve:
    """The items of one (job, metric): the raw line, and the smoothed one when smoothing."""

    def __init__(self, raw: Line) -> None:
        self.raw = raw
        self.smooth: Line | None = None
        self.drawn: tuple[Any, ...] | None = None  # (series version, smoothing, x mode, ...)
        self.style: tuple[Any, ...] | None = None


class ChartsView(QWidget):
    """Charts for the selected jobs, fed by a ChartData and ``data_changed`` calls."""

    redrawn = Signal()

    def __init__(self, data: ChartData, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data = data
        self.jobs: list[tuple[str, str]] = []  # (job_id, label), in overlay order
        self.plots: dict[str, pg.PlotWidget] = {}
        self.curves: dict[tuple[str, str], _Curve] = {}
        self.redraw_count = 0
        self._laid_out: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._frame)
        self._stale = False  # something changed while the charts were hidden
        self._frame_s = 0.0  # what the latest frame cost: its redraw and the paints after it
        self._painting_s = 0.0
        self._windowed: dict[pg.ViewBox, bool] = {}  # curves drawn for a zoomed window only
        self._build_controls()

    # -- controls -------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        outer = QVBoxLayout(self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Smoothing", self))
        self.smoothing = QSlider(Qt.Orientation.Horizontal, self)
        self.smoothing.setObjectName("smoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setMaximumWidth(110)
        self.smoothing.setToolTip(
            "Exponential moving average, as in TensorBoard; the raw line stays behind, faint"
        )
        self.smoothing_label = QLabel("0.00", self)
        bar.addWidget(self.smoothing)
        bar.addWidget(self.smoothing_label)
        self.log_scale = QCheckBox("Log scale", self)
        bar.addWidget(self.log_scale)
        bar.addWidget(QLabel("x:", self))
        self.x_mode = QComboBox(self)
        for key, text in X_MODES.items():
            self.x_mode.addItem(text, key)
        bar.addWidget(self.x_mode)
        bar.addStretch(1)
        self.png_button = QPushButton("Export PNG…", self)
        self.csv_button = QPushButton("Export CSV…", self)
        bar.addWidget(self.png_button)
        bar.addWidget(self.csv_button)
        outer.addLayout(bar)
        self.readout = QLabel(" ", self)
        self.readout.setObjectName("chartReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.readout)
        self.empty = QLabel("No metrics yet. Points appear here as the trainer reports them.", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("chartsEmpty")
        outer.addWidget(self.empty, 1)
        self.grid_host = QWidget(self)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.grid_host, 1)
        self.grid_host.hide()

        self.smoothing.valueChanged.connect(self._settings_changed)
        self.log_scale.toggled.connect(self._log_toggled)
        self.x_mode.currentIndexChanged.connect(self._settings_changed)
        self.png_button.clicked.connect(self._ask_png)
        self.csv_button.clicked.connect(self._ask_csv)

    @property
    def weight(self) -> float:
        return self.smoothing.value() / 100.0

    @property
    def x_key(self) -> str:
        return str(self.x_mode.currentData())

    def _x_label(self) -> str:
        return "step" if self.x_key == "step" else "time (s)"

    def _settings_changed(self) -> None:
        self.smoothing_label.setText(f"{self.weight:.2f}")
        for plot in self.plots.values():
            plot.getPlotItem().setLabel("bottom", self._x_label())
        self.schedule()

    def _log_toggled(self, on: bool) -> None:
        # the axes tick in powers of ten; the curves get log10 of their values at the next redraw
        for plot in self.plots.values():
            plot.getPlotItem().setLogMode(x=False, y=on)
        self.schedule()

    # -- feeding --------------------------------------------------------------------------------

    def set_jobs(self, jobs: Iterable[tuple[str, str]]) -> None:
        """The jobs to overlay, as (job_id, label), first one first in the legend."""
        jobs = list(jobs)
        if jobs == self.jobs:
            return
        self.jobs = jobs
        shown = {job_id for job_id, _ in jobs}
        for key in [k for k in self.curves if k[0] not in shown]:
            self._drop_curve(key)
        for curve in self.curves.values():
            curve.style = None  # colours and legend names depend on the overlay
        self.schedule()

    def data_changed(self, job_id: str, metrics: Iterable[str] = ()) -> None:
        """New points for a job: redraw within a frame (once, however many calls come)."""
        del metrics  # versions on the series say what changed
        if any(job_id == j for j, _ in self.jobs):
            self.schedule()

    def schedule(self) -> None:
        if not self._timer.isActive():
            # a frame that cost more than FRAME_MS delays the next one in proportion, so that
            # drawing never takes the whole GUI thread (the receiver runs on it too)
            last_ms = (self._frame_s + self._painting_s) * 1000
            self._timer.setInterval(max(FRAME_MS, round(FRAME_BUDGET_SHARE * last_ms)))
            self._timer.start()

    def _frame(self) -> None:
        if not self.isVisible():  # another tab is shown: draw when the charts are shown again
            self._stale = True
            return
        self.redraw()

    def showEvent(self, event: QShowEvent) -> None:  # Qt's name
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.schedule()

    def _painted(self, seconds: float) -> None:
        self._painting_s += seconds

    # -- drawing --------------------------------------------------------------------------------

    def redraw(self) -> None:
        began = time.perf_counter()
        self._timer.stop()
        self._painting_s = 0.0
        self.redraw_count += 1
        ids = [j for j, _ in self.jobs]
        panels = self.data.panels(ids)
        self._layout([p.key for p in panels])
        metrics = [m for m in self.data.metrics(ids) if drawn(m) and panel_of(m) in self.plots]
        single = len(ids) == 1
        touched: set[str] = set()  # the panels whose curves got new data
        for index, (job_id, label) in enumerate(self.jobs):
            job = self.data.jobs.get(job_id)
            if job is None:
                continue
            for metric in metrics:
                series = job.get(metric)
                if series is None or not len(series):
                    continue
                key = (job_id, metric)
                curve = self.curves.get(key) or self._new_curve(key)
                smoothing = self.weight > 0
                if smoothing and curve.smooth is None:
                    curve.smooth = Line()
                    curve.smooth.setZValue(1)  # over the faint raw line, whatever came first
                    self.plots[panel_of(metric)].getPlotItem().addItem(curve.smooth)
                elif not smoothing and curve.smooth is not None:
                    self.plots[panel_of(metric)].getPlotItem().removeItem(curve.smooth)
                    curve.smooth = None
                in_panel = [m for m in metrics if panel_of(m) == panel_of(metric)]
                style = (index, label, single, in_panel.index(metric), smoothing)
                if curve.style != style:
                    self._style(curve, metric, *style)
                    curve.style = style
                plot = self.plots[panel_of(metric)]
                lo, hi = self._x_window(plot)
                self._windowed[plot.getPlotItem().vb] = lo is not None
                budget = max(100, int(plot.getPlotItem().vb.width() * BLOCKS_PER_PIXEL))
                log = self.log_scale.isChecked()
                state = (series.version, self.weight, self.x_key, lo, hi, budget, log)
                if curve.drawn == state:
                    continue
                x = series.steps if self.x_key == "step" else job.relative_times(metric)
                # a point a pixel at most: the raw line faint behind the smoothed one
                curve.raw.set_points(*series.decimated(x, 0.0, lo, hi, budget), log=log)
                if curve.smooth is not None:
                    xs, ys = series.decimated(x, self.weight, lo, hi, budget)
                    curve.smooth.set_points(xs, ys, log=log)
                curve.drawn = state
                touched.add(panel_of(metric))
        for panel_key in touched:
            # pyqtgraph fits the view to new data while it paints, and the axes' new ticks then
            # take a second paint; fitting it now makes one paint a frame
            self.plots[panel_key].scene().prepareForPaint()
        self._frame_s = time.perf_counter() - began
        self.redrawn.emit()

    def _layout(self, keys: list[str]) -> None:
        if keys == self._laid_out:
            return
        for key in keys:
            if key not in self.plots:
                plot = make_plot(panel(key), self.grid_host, on_paint=self._painted)
                plot.getPlotItem().setLogMode(x=False, y=self.log_scale.isChecked())
                plot.getPlotItem().setLabel("bottom", self._x_label())
                self._add_crosshair(plot)
                plot.getPlotItem().vb.sigXRangeChanged.connect(self._x_range_changed)
                self.plots[key] = plot
        for plot in self.plots.values():
            self.grid.removeWidget(plot)
            plot.hide()
        columns = 2 if len(keys) > 1 else 1
        for i, key in enumerate(keys):
            self.grid.addWidget(self.plots[key], i // columns, i % columns)
            self.plots[key].show()
        self._laid_out = keys
        self.empty.setVisible(not keys)
        self.grid_host.setVisible(bool(keys))

    @staticmethod
    def _x_window(plot: pg.PlotWidget) -> tuple[float | None, float | None]:
        """The x range to draw: all of it while the view follows the data, else what is in view
        (with a view's width either side, so that a small pan needs no new points)."""
        box = plot.getPlotItem().vb
        if box.autoRangeEnabled()[0]:
            return None, None
        left, right = box.viewRange()[0]
        span = right - left
        return left - span, right + span

    def _x_range_changed(self, box: pg.ViewBox) -> None:
        # a zoom or pan by the user needs points for the new window; a view following the data
        # (auto-range) has them all, unless it has just been turned back on (the plot's "A")
        # after a zoom, when its curves hold only the zoomed window
        if not box.autoRangeEnabled()[0] or self._windowed.get(box, False):
            self.schedule()

    def _new_curve(self, key: tuple[str, str]) -> _Curve:
        raw = Line()
        self.plots[panel_of(key[1])].getPlotItem().addItem(raw)
        curve = self.curves[key] = _Curve(raw)
        return curve

    def _drop_curve(self, key: tuple[str, str]) -> None:
        curve = self.curves.pop(key)
        item = self.plots[panel_of(key[1])].getPlotItem()
        item.removeItem(curve.raw)
        if curve.smooth is not None:
            item.removeItem(curve.smooth)

    def _style(
        self, curve: _Curve, metric: str, index: int, label: str, single: bool, order: int, *_: Any
    ) -> None:
        # one job: a colour per metric; several: a colour per job, a dash per metric
        colour = QColor(PALETTE[(order if single else index) % len(PALETTE)])
        dash = DASHES[0] if single else DASHES[order % len(DASHES)]
        name = metric if single else f"{label} · {metric}"
        pen = pg.mkPen(colour, width=LINE_WIDTH, style=dash)
        legend = self.plots[panel_of(metric)].getPlotItem().legend
        if curve.smooth is None:
            curve.raw.setPen(pen)
            _relabel(legend, curve.raw, name)
        else:
            faint = QColor(colour)
            faint.setAlpha(70)
            curve.raw.setPen(pg.mkPen(faint, width=1, style=dash))
            curve.smooth.setPen(pen)
            if legend is not None:
                legend.removeItem(curve.raw)
            _relabel(legend, curve.smooth, name)

    # -- crosshair ------------------------------------------------------------------------------

    def _add_crosshair(self, plot: pg.PlotWidget) -> None:
        line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#888888", width=1))
        line.hide()
        plot.getPlotItem().addItem(line, ignoreBounds=True)
        plot.scene().sigMouseMoved.connect(
            lambda pos, plot=plot, line=line: self._mouse_moved(plot, line, pos)
        )

    def _mouse_moved(self, plot: pg.PlotWidget, line: pg.InfiniteLine, pos: QPointF) -> None:
        item = plot.getPlotItem()
        if not item.sceneBoundingRect().contains(pos):
            line.hide()
            return
        x = item.vb.mapSceneToView(pos).x()
        line.setPos(x)
        line.show()
        self.readout.setText(self.read_out(plot, x))

    def read_out(self, plot: pg.PlotWidget, x: float) -> str:
        """The values under the crosshair: nearest point of every curve in the panel."""
        key = next((k for k, p in self.plots.items() if p is plot), None)
        labels = dict(self.jobs)
        parts = [f"{'step' if self.x_key == 'step' else 't'} {x:.6g}"]
        for job_id, metric in self.curves:
            job = self.data.jobs.get(job_id)
            series = job.get(metric) if job else None
            if panel_of(metric) != key or job is None or series is None or not len(series):
                continue
            xs = series.steps if self.x_key == "step" else job.relative_times(metric)
            i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
            if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
                i -= 1
            y = series.smoothed(self.weight)[i] if self.weight > 0 else series.values[i]
            who = metric if len(self.jobs) == 1 else f"{labels.get(job_id, job_id)} {metric}"
            parts.append(f"{who} {y:.5g} @ {xs[i]:.6g}")
        return " · ".join(parts)

    # -- reading back (tests, export) -----------------------------------------------------------

    def plotted(self, job_id: str, metric: str) -> np.ndarray:
        """The y values handed to the chart for a job's metric (decimated past a point a pixel)."""
        curve = self.curves.get((job_id, metric))
        if curve is None or curve.raw.yData is None:
            return np.empty(0)
        return np.asarray(curve.raw.yData)

    def export_png(self, path: Path) -> None:
        if not self.grid_host.grab().save(str(path), "PNG"):
            raise OSError(f"{path}: could not write the image (check the folder exists)")

    def export_csv(self, path: Path) -> int:
        with path.open("w", encoding="utf-8", newline="") as out:
            return self.data.write_csv([j for j, _ in self.jobs], out, dict(self.jobs))

    def _ask_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export charts", "charts.png", "PNG (*.png)")
        if path:
            self._export(lambda: self.export_png(Path(path)))

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self._export(lambda: self.export_csv(Path(path)))

    def _export(self, action: Any) -> None:
        try:
            action()
        except OSError as err:
            QMessageBox.warning(self, "Export failed", str(err))


def _relabel(legend: pg.LegendItem | None, item: pg.PlotCurveItem, name: str) -> None:
    if legend is None:
        return
    legend.removeItem(item)
    legend.addItem(item, name)
