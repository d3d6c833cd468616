"""The charts widget: points reach the curves, redraws coalesce, overlays, smoothing, export."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.ui.chart_data import ChartData, Series, ema
from app.ui.charts import FRAME_MS, PALETTE, ChartsView


@pytest.fixture
def charts(qtbot) -> tuple[ChartsView, ChartData]:
    data = ChartData()
    view = ChartsView(data)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    return view, data


def _points(n: int, start: int = 0, **extra: float) -> list[dict]:
    return [
        {"step": s, "train_loss": 3.0 / (s + 1), "learning_rate": 1e-4, **extra}
        for s in range(start, start + n)
    ]


def test_points_reach_the_curves_with_one_redraw_per_frame(qtbot, charts) -> None:
    view, data = charts
    view.set_jobs([("a", "run a")])
    qtbot.waitUntil(lambda: view.redraw_count >= 1)  # the empty first draw
    before = view.redraw_count
    for batch in range(50):  # fifty batches inside one frame
        data.add_points("a", _points(2, start=batch * 2))
        view.data_changed("a", {"train_loss"})
    qtbot.wait(FRAME_MS * 4)
    assert view.redraw_count == before + 1
    assert list(view.plotted("a", "train_loss")) == [3.0 / (s + 1) for s in range(100)]
    assert set(view.plots) == {"loss", "learning_rate"}  # nothing drawn for absent GPU figures
    assert not view.empty.isVisible()


def test_several_jobs_overlay_in_distinct_colours_with_a_legend(qtbot, charts) -> None:
    view, data = charts
    data.add_points("a", _points(10))
    data.add_points("b", _points(10, eval_loss=1.0))
    view.set_jobs([("a", "first"), ("b", "second")])
    view.redraw()
    colour_a = view.curves[("a", "train_loss")].raw.opts["pen"].color().name()
    colour_b = view.curves[("b", "train_loss")].raw.opts["pen"].color().name()
    assert (colour_a, colour_b) == (PALETTE[0], PALETTE[1])
    legend = view.plots["loss"].getPlotItem().legend
    names = [label.text for _, label in legend.items]
    assert names == ["first · train_loss", "second · train_loss", "second · eval_loss"]
    # dropping a job from the selection removes its curves
    view.set_jobs([("b", "second")])
    view.redraw()
    assert ("a", "train_loss") not in view.curves


def test_smoothing_draws_the_ema_over_a_faint_raw_line(qtbot, charts) -> None:
    view, data = charts
    data.add_points("a", _points(40))
    view.set_jobs([("a", "a")])
    view.smoothing.setValue(60)
    view.redraw()
    curve = view.curves[("a", "train_loss")]
    assert curve.smooth is not None
    raw = np.array([3.0 / (s + 1) for s in range(40)])
    np.testing.assert_allclose(curve.smooth.yData, ema(raw, 0.6))
    assert curve.raw.opts["pen"].color().alpha() < 255
    view.smoothing.setValue(0)
    view.redraw()
    assert curve.smooth is None


def test_log_scale_and_wall_time_axis(qtbot, charts) -> None:
    view, data = charts
    data.add_points(
        "a",
        [
            {"step": 10, "train_loss": 2.0, "timestamp": "2026-11-28T12:00:00Z"},
            {"step": 20, "train_loss": 1.0, "timestamp": "2026-11-28T12:00:30Z"},
        ],
    )
    view.set_jobs([("a", "a")])
    view.redraw()
    view.log_scale.setChecked(True)
    assert view.plots["loss"].getPlotItem().ctrl.logYCheck.isChecked()
    view.x_mode.setCurrentIndex(view.x_mode.findData("time"))
    view.redraw()
    assert list(view.curves[("a", "train_loss")].raw.xData) == [0.0, 30.0]
    assert view.plots["loss"].getPlotItem().getAxis("bottom").labelText == "time (s)"


def test_crosshair_reads_the_nearest_point(qtbot, charts) -> None:
    view, data = charts
    data.add_points("a", _points(10))
    view.set_jobs([("a", "a")])
    view.redraw()
    text = view.read_out(view.plots["loss"], 4.2)
    assert "train_loss 0.6 @ 4" in text


def test_export_png_and_csv(qtbot, charts, tmp_path: Path) -> None:
    view, data = charts
    data.add_points("a", _points(5))
    view.set_jobs([("a", "run a")])
    view.redraw()
    png = tmp_path / "charts.png"
    view.export_png(png)
    image = QImage(str(png))
    assert not image.isNull() and image.width() > 100
    csv_path = tmp_path / "metrics.csv"
    assert view.export_csv(csv_path) == 5
    # the columns of `tunedeck export` (app.core.metrics_csv), the contract's fields always
    assert csv_path.read_text().splitlines()[0].startswith("job_id,job,step,epoch,train_loss,")


def test_zooming_in_redraws_the_window_point_for_point(qtbot, charts) -> None:
    view, data = charts
    n = 300_000
    series = data.job("a").series.setdefault("train_loss", Series())
    series.extend(np.arange(n), np.random.default_rng(0).normal(size=n), np.zeros(n))
    view.set_jobs([("a", "a")])
    view.redraw()
    curve = view.curves[("a", "train_loss")]
    assert len(curve.raw.xData) <= 4 * view.plots["loss"].width()  # blocks, not 300k points
    view.plots["loss"].getPlotItem().vb.setXRange(1000, 1100, padding=0)
    qtbot.waitUntil(lambda: curve.raw.xData[0] > 800)
    # the window plus a view's width either side, every point in it
    assert list(curve.raw.xData) == list(range(899, 1201))


def test_hidden_charts_do_not_redraw_until_shown(qtbot, charts) -> None:
    view, data = charts
    view.set_jobs([("a", "a")])
    qtbot.waitUntil(lambda: view.redraw_count >= 1)
    view.hide()
    before = view.redraw_count
    data.add_points("a", _points(5))
    view.data_changed("a", {"train_loss"})
    qtbot.wait(FRAME_MS * 4)
    assert view.redraw_count == before  # another tab is in front: nothing drawn
    view.show()
    qtbot.waitUntil(lambda: view.redraw_count == before + 1)
    assert len(view.plotted("a", "train_loss")) == 5


def test_a_frame_paints_each_plot_once(qtbot, charts) -> None:
    view, data = charts
    data.add_points("a", _points(50))
    view.set_jobs([("a", "a")])
    view.redraw()
    painted: list[float] = []
    for plot in view.plots.values():
        plot._on_paint = painted.append
    for _ in range(50):  # until the first frame's paints are over, on a busy machine too
        count = len(painted)
        qtbot.wait(100)
        if len(painted) == count:
            break
    painted.clear()
    data.add_points("a", _points(50, start=50))  # the view follows the data: new x range
    view.redraw()
    qtbot.wait(300)
    # pyqtgraph fits the view while painting, which used to take a second paint with new ticks
    assert len(painted) == len(view.plots) == 2


def test_a_costly_frame_delays_the_next_in_proportion(qtbot, charts) -> None:
    view, _ = charts
    view._frame_s, view._painting_s = 0.05, 0.07  # a redraw of 50 ms and its paints of 70 ms
    view.schedule()
    assert view._timer.interval() == 120  # drawing keeps at most half of the GUI thread
    view._timer.stop()
    view._frame_s = view._painting_s = 0.0
    view.schedule()
    assert view._timer.interval() == FRAME_MS


def test_log_scale_draws_log10_and_leaves_a_gap_for_non_positive_values(qtbot, charts) -> None:
    view, data = charts
    data.add_points(
        "a", [{"step": s, "train_loss": v} for s, v in enumerate([100.0, 10.0, 0.0, 1.0])]
    )
    view.set_jobs([("a", "a")])
    view.log_scale.setChecked(True)
    view.redraw()
    y = view.plotted("a", "train_loss")
    assert list(y[[0, 1, 3]]) == [2.0, 1.0, 0.0] and not np.isfinite(y[2])
    view.log_scale.setChecked(False)
    view.redraw()
    assert list(view.plotted("a", "train_loss")) == [100.0, 10.0, 0.0, 1.0]


# -- the view follows a growing run in steps -------------------------------------------------


def _feed_sine(data: ChartData, start: int, n: int) -> None:
    data.add_points(
        "a", [{"step": s, "train_loss": 2.0 + np.sin(s / 50)} for s in range(start, start + n)]
    )


def test_a_growing_run_moves_the_axes_only_now_and_then(qtbot, charts) -> None:
    view, data = charts
    _feed_sine(data, 1, 1000)
    view.set_jobs([("a", "a")])
    view.redraw()
    box = view.plots["loss"].getPlotItem().vb
    ranges = [box.viewRange()[0]]
    for frame in range(40):  # ten steps a frame, four hundred in all
        _feed_sine(data, 1001 + frame * 10, 10)
        view.redraw()
        qtbot.wait(1)  # the paint, where the view follows
        ranges.append(box.viewRange()[0])
    moves = sum(1 for a, b in itertools.pairwise(ranges) if a != b)
    # an exact fit would move every frame; with 10% headroom a 1,000-step span moves every
    # ~100 steps
    assert 1 <= moves <= 8, moves
    left, right = box.viewRange()[0]
    assert left <= 1 and right >= 1400  # and every point is in view


def test_a_zoom_stops_following_and_the_auto_button_refits(qtbot, charts) -> None:
    view, data = charts
    _feed_sine(data, 1, 500)
    view.set_jobs([("a", "a")])
    view.redraw()
    item = view.plots["loss"].getPlotItem()
    item.vb.setXRange(100, 200, padding=0)  # what a wheel or a drag does
    _feed_sine(data, 501, 500)
    view.redraw()
    qtbot.wait(1)
    assert item.vb.viewRange()[0] == [100, 200]  # the user's window stays
    item.autoBtnClicked()  # the "A" in the plot's corner
    qtbot.waitUntil(lambda: item.vb.viewRange()[0][1] >= 1000)
    assert item.vb.viewRange()[0][0] <= 1
