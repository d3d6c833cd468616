"""The pyqtgraph items the live charts draw with: a line that knows its bounds, and a view box
that follows its data in steps.

A live chart's data grows every frame. pyqtgraph's auto-range fits the view to it exactly, so
the view moves every frame, and with it both axes (new ticks, labels and grid lines), and every
curve's bounds are measured again from its points. With 40 curves on four plots that was half
of a frame's cost. Here the view grows with headroom (``follow_range``): it moves only when the
data leaves it or it has grown too loose, so most frames redraw the curves and nothing else,
and a line's bounds are taken once, from the points it is handed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg  # type: ignore[import-untyped]  # no stubs upstream

# the room a followed view leaves beyond its data, as a share of the data's span: on x, on the
# right (where a run grows); on y, half above and half below
HEADROOM = 0.1

Bounds = tuple[float, float]


def follow_range(
    current: Bounds, data: Bounds, *, padding: float, headroom: float = HEADROOM, grows: str
) -> Bounds:
    """The range a view following ``data`` should show, given what it shows now.

    ``current`` is kept while it holds the data and is at most ``1 + 2 * headroom`` times as
    wide as the data with its padding; otherwise the data, padded, plus
    ``headroom`` of its span on the right (``grows="right"``) or split either side
    (``grows="both"``).
    """
    lo, hi = data
    span = hi - lo
    if span <= 0:  # a flat line: a band around it
        span = abs(hi) * 0.1 or 1.0
    want_lo, want_hi = lo - span * padding, hi + span * padding
    now_lo, now_hi = current
    # the data itself, not its padding, decides: the padding grows with the span, so a view
    # asked to hold it would move every frame
    holds = now_lo <= lo and now_hi >= hi
    if holds and now_hi - now_lo <= (want_hi - want_lo) * (1 + 2 * headroom):
        return current
    extra = span * headroom
    if grows == "right":
        return want_lo, want_hi + extra
    return want_lo - extra / 2, want_hi + extra / 2


class Line(pg.PlotCurveItem):  # type: ignore[misc]  # pyqtgraph has no stubs
    """A curve handed finite points by the charts, which keeps their bounds for the view box
    and its own bounding box instead of measuring them again on every call (six a frame)."""

    def __init__(self) -> None:
        super().__init__()
        self._bounds: tuple[Bounds, Bounds] | None = None

    def set_points(self, x: np.ndarray, y: np.ndarray, *, log: bool) -> None:
        """Series hold finite values only, so pyqtgraph's finite check is skipped; on a log
        scale the curve gets log10 of them (what PlotDataItem does in log mode), and zero or
        negative values leave a gap."""
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(y)
            finite = y[np.isfinite(y)]
            y_bounds = (float(finite.min()), float(finite.max())) if len(finite) else None
            self._bounds = _both(x, y_bounds)
            self.setData(x, y, connect="finite", skipFiniteCheck=False)
        else:
            self._bounds = _both(x, (float(y.min()), float(y.max())) if len(y) else None)
            self.setData(x, y, connect="all", skipFiniteCheck=True)

    def dataBounds(  # pyqtgraph's name
        self, ax: int, frac: float = 1.0, orthoRange: Any = None
    ) -> tuple[float | None, float | None]:
        if frac >= 1.0 and orthoRange is None and self._bounds is not None:
            return self._bounds[ax]
        result: tuple[float | None, float | None] = super().dataBounds(ax, frac, orthoRange)
        return result


def _both(x: np.ndarray, y_bounds: Bounds | None) -> tuple[Bounds, Bounds] | None:
    if not len(x) or y_bounds is None:
        return None
    return (float(x.min()), float(x.max())), y_bounds


class FollowingViewBox(pg.ViewBox):  # type: ignore[misc]  # pyqtgraph has no stubs
    """pyqtgraph's view box, whose auto-range follows the data with ``follow_range`` instead of
    fitting it exactly. Everything else is pyqtgraph's: a pan or zoom by the user turns
    following off, the plot's "A" button turns it back on."""

    _updatingRange: bool  # pyqtgraph's, set in its __init__

    def updateAutoRange(self) -> None:  # pyqtgraph's name, called before a paint
        if self._updatingRange:  # an item resizing itself in answer to the view: no loop
            return
        self._updatingRange = True
        try:
            auto = self.state["autoRange"]
            if not any(auto):
                return
            bounds = self.childrenBounds(frac=(1.0, 1.0))
            current = self.viewRange()
            ranges: dict[str, Bounds] = {}
            for ax, name, grows in ((0, "xRange", "right"), (1, "yRange", "both")):
                data = bounds[ax]
                if auto[ax] is False or data is None or not all(map(math.isfinite, data)):
                    continue
                now = (float(current[ax][0]), float(current[ax][1]))
                wanted = follow_range(
                    now, (data[0], data[1]), padding=self.suggestPadding(ax), grows=grows
                )
                if wanted != now:
                    ranges[name] = wanted
            if ranges:
                self.setRange(**ranges, padding=0.0, disableAutoRange=False)
        finally:
            self._autoRangeNeedsUpdate = False
            self._updatingRange = False
