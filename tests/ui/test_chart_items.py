"""The charts' view follows growing data in steps, so most frames leave the axes alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.ui.chart_data import ChartData
from app.ui.chart_items import HEADROOM, Line, follow_range
from app.ui.charts import ChartsView


def test_a_view_that_holds_the_data_is_kept() -> None:
    assert follow_range((0.0, 120.0), (1.0, 100.0), padding=0.02, grows="right") == (0.0, 120.0)


def test_data_past_the_edge_refits_with_headroom_on_the_growing_side() -> None:
    lo, hi = follow_range((0.0, 120.0), (0.0, 130.0), padding=0.0, grows="right")
    assert (lo, hi) == (0.0, pytest.approx(130.0 * (1 + HEADROOM)))
    lo, hi = follow_range((0.0, 1.0), (2.0, 4.0), padding=0.0, grows="both")
    assert (lo, hi) == (pytest.approx(2.0 - HEADROOM), pytest.approx(4.0 + HEADROOM))


def test_a_view_grown_too_loose_for_its_data_is_tightened() -> None:
    # the data shrank (another job selected, smoothing on): a view ten times too wide refits
    assert follow_range((0.0, 1000.0), (0.0, 100.0), padding=0.0, grows="right") == (
        0.0,
        pytest.approx(100.0 * (1 + HEADROOM)),
    )


def test_a_flat_line_gets_a_band_around_it() -> None:
    lo, hi = follow_range((0.0, 1.0), (5.0, 5.0), padding=0.0, grows="both")
    assert lo < 5.0 < hi
    lo, hi = follow_range((5.0, 6.0), (0.0, 0.0), padding=0.0, grows="both")
    assert lo < 0.0 < hi


def test_a_line_keeps_the_bounds_of_its_points(qtbot) -> None:
    line = Line()
    line.set_points(np.array([1.0, 2.0, 3.0]), np.array([0.5, 4.0, 2.0]), log=False)
    assert line.dataBounds(0) == (1.0, 3.0)
    assert line.dataBounds(1) == (0.5, 4.0)
    # on a log scale: log10 of the values, and a zero (no logarithm) leaves a gap, not a bound
    line.set_points(np.array([1.0, 2.0, 3.0]), np.array([0.0, 10.0, 1000.0]), log=True)
    assert line.dataBounds(1) == (1.0, 3.0)


@pytest.fixture
def charts(qtbot) -> tuple[ChartsView, ChartData]:
    data = ChartData()
    view = ChartsView(data)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    return view, data


def _feed(data: ChartData, start: int, n: int) -> None:
    data.add_points(
        "a", [{"step": s, "train_loss": 2.0 + np.sin(s / 50)} for s in range(start, start + n)]
    )


def test_a_growing_run_moves_the_axes_only_now_and_then(qtbot, charts) -> None:
    view, data = charts
    _feed(data, 1, 1000)
    view.set_jobs([("a", "a")])
    view.redraw()
    box = view.plots["loss"].getPlotItem().vb
    ranges = [box.viewRange()[0]]
    for frame in range(40):  # ten steps a frame, four hundred in all
        _feed(data, 1001 + frame * 10, 10)
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
    _feed(data, 1, 500)
    view.set_jobs([("a", "a")])
    view.redraw()
    item = view.plots["loss"].getPlotItem()
    item.vb.setXRange(100, 200, padding=0)  # what a wheel or a drag does
    _feed(data, 501, 500)
    view.redraw()
    qtbot.wait(1)
    assert item.vb.viewRange()[0] == [100, 200]  # the user's window stays
    item.autoBtnClicked()  # the "A" in the plot's corner
    qtbot.waitUntil(lambda: item.vb.viewRange()[0][1] >= 1000)
    assert item.vb.viewRange()[0][0] <= 1
