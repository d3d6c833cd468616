"""The token-length histogram against ``max_length``. Light module."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BINS = 24


def _step(top: int, bins: int) -> int:
    """A round bin width (1, 2, 5 x 10^k) that covers ``top`` in about ``bins`` bins."""
    raw = max(1.0, top / bins)
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if mult * power >= raw:
            return int(mult * power)
    return int(10 * power)


def histogram(lengths: Sequence[int], max_length: int, bins: int = BINS) -> dict[str, Any]:
    """Counts of sequence lengths in round-width bins from 0 to past the longer of the longest
    sequence and ``max_length``; ``max_length`` itself falls on a bin edge only by chance, so the
    drawing marks it as a line."""
    longest = max(lengths, default=0)
    width = _step(max(longest, max_length) + 1, bins)
    n_bins = max(1, -(-(max(longest, max_length) + 1) // width))
    counts = [0] * n_bins
    for n in lengths:
        counts[min(n // width, n_bins - 1)] += 1
    ordered = sorted(lengths)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0

    return {
        "edges": [i * width for i in range(n_bins + 1)],
        "counts": counts,
        "max_length": max_length,
        "sequences": len(lengths),
        "over_max_length": sum(1 for n in lengths if n > max_length),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "longest": longest,
    }
