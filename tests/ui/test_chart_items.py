"""The items the charts draw with: the range a followed view keeps, a line's own bounds."""

from __future__ import annotations

import numpy as np
import pytest

from app.ui.chart_items import HEADROOM, Line, follow_range


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
