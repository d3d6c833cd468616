"""Cost of one chart redraw with 1,000,000 points in each of 4 series (target: under 16 ms).

Three ways to draw the same live data, measured in the same process: every frame one new point
arrives in each series, the curves get their data and the plot is repainted.

- pyqtgraph defaults: ``PlotDataItem.setData`` with the whole arrays, nothing else set;
- pyqtgraph tuned: the same with peak downsampling and clip-to-view on the plot;
- Tunedeck: ``app.ui.charts.ChartsView`` (the same pyqtgraph settings, plus min/max blocks kept
  up to date as points arrive, so pyqtgraph is handed about two points a pixel).

Each is timed in wall time and in the GUI thread's own CPU time (``time.thread_time``): on a
machine shared with other work the CPU time is the one to compare; the ratios are taken within
one run.

Run: ``.venv/bin/python bench/charts.py`` (offscreen when there is no display).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from app.ui.chart_data import ChartData, Series
from app.ui.charts import ChartsView, apply_fast_drawing

POINTS = 1_000_000
SERIES = 4
FRAMES = 12
SIZE = (1000, 600)


def _walks() -> list[np.ndarray]:
    return [np.cumsum(np.random.default_rng(i).standard_normal(POINTS)) for i in range(SERIES)]


Timing = tuple[float, float, float]  # first frame, median of the others (wall, CPU), ms


def _frames(step: Callable[[int], None]) -> Timing:
    """(first frame, median of the following ones, their median CPU time) in milliseconds."""
    times, cpu = [], []
    for frame in range(FRAMES):
        start, start_cpu = time.perf_counter(), time.thread_time()
        step(frame)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return times[0], statistics.median(times[2:]), statistics.median(cpu[2:])


def bench_pyqtgraph(app: QApplication, walks: list[np.ndarray], tuned: bool) -> Timing:
    plot = pg.PlotWidget()
    plot.resize(*SIZE)
    if tuned:
        apply_fast_drawing(plot.getPlotItem())
    plot.show()
    app.processEvents()
    curves = [plot.plot() for _ in walks]
    x = np.arange(POINTS + FRAMES, dtype=np.float64)
    ys = [np.append(w, np.zeros(FRAMES)) for w in walks]

    def step(frame: int) -> None:
        n = POINTS + frame
        for curve, y in zip(curves, ys, strict=True):
            curve.setData(x[:n], y[:n])
        plot.viewport().repaint()

    result = _frames(step)
    plot.close()
    return result


def bench_tunedeck(app: QApplication, walks: list[np.ndarray]) -> Timing:
    data = ChartData()
    jobs = [(f"job{i}", f"run {i}") for i in range(SERIES)]
    for (job_id, _), walk in zip(jobs, walks, strict=True):
        series = data.job(job_id).series.setdefault("train_loss", Series())
        series.extend(np.arange(POINTS), walk, np.zeros(POINTS))
    view = ChartsView(data)
    view.resize(*SIZE)
    view.show()
    view.set_jobs(jobs)
    app.processEvents()

    def step(frame: int) -> None:
        for job_id, _ in jobs:
            data.add_points(job_id, [{"step": POINTS + frame, "train_loss": 0.0}])
        view.redraw()
        for plot in view.plots.values():
            plot.viewport().repaint()

    result = _frames(step)
    view.close()
    return result


def main() -> None:
    app = QApplication.instance() or QApplication(sys.argv)
    walks = _walks()
    rows = [
        ("pyqtgraph defaults", bench_pyqtgraph(app, walks, tuned=False)),
        ("pyqtgraph downsample+clip", bench_pyqtgraph(app, walks, tuned=True)),
        ("Tunedeck charts", bench_tunedeck(app, walks)),
    ]
    print(f"redraw with {SERIES} series x {POINTS:,} points, one new point per series per frame")
    print(f"{'':28}{'first frame':>14}{'per frame':>12}{'its CPU':>12}")
    for name, (first, median, cpu) in rows:
        print(f"{name:28}{first:11.1f} ms{median:9.1f} ms{cpu:9.1f} ms")
    base, ours = rows[0][1][2], rows[-1][1][2]
    verdict = "meets" if ours < 16 else "MISSES"
    print(
        f"Tunedeck vs defaults: {base / ours:.1f}x less CPU a frame; {ours:.1f} ms of CPU "
        f"{verdict} a 16 ms frame"
    )


if __name__ == "__main__":
    main()
