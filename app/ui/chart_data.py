"""The numbers behind the charts: one series per job per metric, smoothing, CSV export.

No Qt here, so that the arithmetic can be tested on its own. Points arrive as the dicts of the
wire format (``trainer.events.MetricPoint``): a ``step``, any named metrics, extras (a method's
own figures such as ``rewards/margins``) and an ISO ``timestamp``. Series are kept sorted by step
in growable numpy arrays, so a million points cost a few appends, not a million list items.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np

from app.core.metrics_csv import JobRows, write_metrics_csv
from trainer.events import METRIC_FIELDS

NOT_METRICS = frozenset({"step", "timestamp", "job_id", "seq", "id", "received_at"})


def drawn(metric: str) -> bool:
    """Whether a metric gets a curve. Bookkeeping a trainer reports alongside (epoch, token and
    FLOP counters, eval timings) is kept for CSV export but not drawn: a counter that only grows
    would flatten every other curve in its panel."""
    if metric == "epoch" or metric.endswith(("num_tokens", "_runtime", "total_flos")):
        return False
    # the eval loop's own speed; the training speed has its own panels
    return not (metric.startswith("eval_") and metric.endswith("_per_second"))


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    metrics: tuple[str, ...]  # empty for the method's own figures: every extra goes there
    unit: str = ""


PANELS: tuple[Panel, ...] = (
    Panel("loss", "Loss", ("train_loss", "eval_loss")),
    Panel("learning_rate", "Learning rate", ("learning_rate",)),
    Panel("grad_norm", "Grad norm", ("grad_norm",)),
    Panel("samples", "Throughput: samples/s", ("samples_per_second",), "samples/s"),
    Panel("tokens", "Throughput: tokens/s", ("tokens_per_second",), "tokens/s"),
    Panel(
        "gpu_memory",
        "GPU memory",
        ("gpu_memory_allocated_gb", "gpu_memory_reserved_gb"),
        "GB",
    ),
    Panel("gpu_util", "GPU utilisation", ("gpu_utilization_percent",), "%"),
    Panel("perplexity", "Perplexity", ("perplexity",)),
    Panel("method", "Method figures", ()),
)
_BY_KEY = {p.key: p for p in PANELS}
_PANEL_OF: dict[str, str] = {m: p.key for p in PANELS for m in p.metrics}


def panel_of(metric: str) -> str:
    """The panel a metric is drawn in. Unknown metrics are the method's own figures, grouped by
    the prefix TRL gives them (``rewards/chosen`` and ``rewards/margins`` share a panel)."""
    known = _PANEL_OF.get(metric) or _PANEL_OF.get(metric.removeprefix("eval_"))
    if known is not None:
        return known  # eval_perplexity beside perplexity
    prefix, sep, _ = metric.removeprefix("eval_").partition("/")
    return f"method:{prefix}" if sep else "method"


def panel(key: str) -> Panel:
    """The panel for a key from ``panel_of``."""
    if key in _BY_KEY:
        return _BY_KEY[key]
    group = key.partition(":")[2]
    return Panel(key, f"Method figures: {group}", ())


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an ISO-8601 string (``Z`` or offset), else None."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start.

    ``weight`` is the slider's value in [0, 1): 0 returns the values unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or values.size == 0:
        return values.copy()
    raw, _ = _ema_raw(values, weight, 0.0)
    counts = np.arange(1, values.size + 1, dtype=np.float64)
    return raw / (1.0 - weight**counts)


def _ema_raw(values: np.ndarray, weight: float, start: float) -> tuple[np.ndarray, float]:
    """r[i] = w * r[i-1] + (1 - w) * x[i], from r[-1] = start, without a Python loop per point.

    Within a chunk, r[i] = w^(i+1) * (start + (1 - w) * sum_k x[k] * w^-(k+1)); the chunk is kept
    short enough that w^-k stays below overflow (e^500 at most; doubles reach e^709).
    """
    n = values.size
    out = np.empty(n, dtype=np.float64)
    chunk = max(1, min(n, int(500.0 / -math.log(weight)))) if weight < 1 else n
    powers = weight ** np.arange(1, chunk + 1, dtype=np.float64)
    state = start
    for begin in range(0, n, chunk):
        x = values[begin : begin + chunk]
        p = powers[: x.size]
        acc = np.cumsum(x / p) * (1.0 - weight)
        block = p * (state + acc)
        out[begin : begin + x.size] = block
        state = float(block[-1])
    return out, state


LOD_FACTOR = 4
# the smallest block kept in a pyramid level: a level of blocks of 64 costs a quarter of a byte a
# point; finer ones (a zoomed window) are read from the values each time, which is cheap
STORED_BLOCK = 64
STEP_DTYPE = np.dtype(np.int32)  # whole steps up to 2^31; a fractional or larger one widens it
WIDE_STEP_DTYPE = np.dtype(np.float64)
_INT32_MAX = float(np.iinfo(np.int32).max)


class Pyramid:
    """Min and max of blocks of 4, 16, 64, ... values, each level built when a view first needs
    it and extended as values are appended.

    A chart asks for about two points per pixel; with this, that costs the same for a million
    points as for a thousand (a slice of the right level plus one partial block), instead of a
    pass over every point on every frame. Only the levels some view has used are kept: drawing a
    whole million-point series needs one level of a few hundred blocks, not every finer one (the
    finer levels of a full pyramid would cost 5 bytes a point).
    """

    def __init__(self) -> None:
        self.levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # block size: complete blocks

    def nbytes(self) -> int:
        return sum(lo.nbytes + hi.nbytes for lo, hi in self.levels.values())

    def level(self, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(mins, maxs) of the complete blocks of ``size`` values, up to date with ``values``."""
        complete = len(values) // size
        mins, maxs = self.levels.get(size, (np.empty(0), np.empty(0)))
        have = len(mins)
        if complete > have:
            # from the finest level kept below this one (a few blocks each), else the values
            finer = max((s for s in self.levels if s < size and size % s == 0), default=1)
            if finer > 1:
                src_min, src_max = self.level(values, finer)
                per = size // finer
            else:
                src_min = src_max = values
                per = size
            lo, hi = have * per, complete * per
            mins = np.concatenate([mins, src_min[lo:hi].reshape(-1, per).min(axis=1)])
            maxs = np.concatenate([maxs, src_max[lo:hi].reshape(-1, per).max(axis=1)])
            self.levels[size] = (mins, maxs)
        return mins, maxs

    def decimate(
        self, x: np.ndarray, values: np.ndarray, i0: int, i1: int, budget: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points i0..i1 as at most ``2 * budget`` points (the min and max of at most ``budget``
        blocks, more than ``budget / 2`` of them) that keep every peak."""
        if i1 - i0 <= 2 * budget:
            return x[i0:i1], values[i0:i1]
        # the coarsest stored level still fine enough, then groups of ``per`` of its blocks, so
        # that the count lands near the budget rather than anywhere down to a quarter of it
        size = 1
        while (i1 // (size * LOD_FACTOR)) - (i0 // (size * LOD_FACTOR)) > budget:
            size *= LOD_FACTOR
        per = -(-(i1 // size - i0 // size) // budget)  # ceil: blocks per group
        if size < STORED_BLOCK:
            # a window of at most 64 x budget points: read from the values, nothing kept
            fine_min = fine_max = values
            size, per = 1, size * per
        else:
            fine_min, fine_max = self.level(values, size)
        size *= per
        b0, b1 = i0 // size, min(-(-i1 // size), len(fine_min) // per)
        starts = np.arange(b0, b1) * size
        low = fine_min[b0 * per : b1 * per].reshape(-1, per).min(axis=1)
        high = fine_max[b0 * per : b1 * per].reshape(-1, per).max(axis=1)
        tail = max(b1 * size, i0)
        if tail < i1:  # the last, incomplete block comes from the values themselves
            starts = np.append(starts, tail)
            low = np.append(low, values[tail:i1].min())
            high = np.append(high, values[tail:i1].max())
        xs = np.repeat(x[starts], 2)
        ys = np.column_stack([high, low]).ravel()
        return xs, ys


class Series:
    """One metric of one job, sorted by step.

    Stored once, in growable arrays: steps as int32 (float64 only once a fractional or huge step
    arrives), values and wall times as float64, so that CSV export gives back exactly what the
    trainer sent. 20 bytes a point (``bytes_per_point``), plus the pyramid levels a view has used.
    """

    def __init__(self) -> None:
        self._n = 0
        self._steps = np.empty(64, dtype=STEP_DTYPE)
        self._times = np.empty(64, dtype=np.float64)
        self._values = np.empty(64, dtype=np.float64)
        self.version = 0  # bumped on every change, so views know what to redraw
        self._smooth_cache: tuple[float, int, float, np.ndarray] | None = None
        self._pyramids: dict[float, Pyramid] = {}  # per smoothing weight (0: raw values)

    def __len__(self) -> int:
        return self._n

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self._n]

    @property
    def times(self) -> np.ndarray:
        return self._times[: self._n]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self._n]

    def bytes_per_point(self) -> int:
        """What one stored point costs in the arrays (capacity not yet used aside)."""
        return self._steps.itemsize + self._times.itemsize + self._values.itemsize

    def nbytes(self) -> int:
        """Memory held for this series: used array slots, pyramids and the smoothing cache."""
        smooth = self._smooth_cache[1] * 8 if self._smooth_cache else 0
        pyramids = sum(p.nbytes() for p in self._pyramids.values())
        return self._n * self.bytes_per_point() + pyramids + smooth

    def _fit_steps(self, steps: np.ndarray) -> np.ndarray:
        """``steps`` in the dtype they are stored in, the stored steps widened to float64 first
        when some of ``steps`` are not whole int32 numbers. (A cast and a compare: no float64
        temporary the size of a history load.)"""
        if self._steps.dtype == STEP_DTYPE and steps.size:
            if float(steps.min()) >= -_INT32_MAX and float(steps.max()) <= _INT32_MAX:
                whole = steps.astype(STEP_DTYPE)
                if np.array_equal(whole, steps):
                    return whole
            self._steps = self._steps.astype(WIDE_STEP_DTYPE)
        return steps

    def _fit_step(self, step: float) -> None:
        # the one-point case of _fit_steps without numpy: add() runs for every incoming metric
        if self._steps.dtype != WIDE_STEP_DTYPE and not (
            step.is_integer() and -_INT32_MAX <= step <= _INT32_MAX
        ):
            self._steps = self._steps.astype(WIDE_STEP_DTYPE)

    def _grow(self, need: int) -> None:
        if need <= self._steps.size:
            return
        # an eighth of headroom: appends still copy rarely (once per 12% growth), and a grown
        # array that reuses freed, already touched heap pages (as numpy's large arrays do once
        # glibc raises its mmap threshold) costs at most 12% more than its points
        size = max(need, self._steps.size + self._steps.size // 8 + 64)
        for name in ("_steps", "_times", "_values"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def add(self, step: float, value: float, time: float) -> None:
        self._fit_step(float(step))
        n = self._n
        if n == 0 or step > self._steps[n - 1]:
            self._grow(n + 1)
            self._steps[n], self._times[n], self._values[n] = step, time, value
            self._n += 1
        else:
            i = int(np.searchsorted(self.steps, step))
            if i < n and self._steps[i] == step:
                # the same step again (a retry, or eval figures arriving later): later wins
                self._values[i] = value
                if not math.isnan(time):
                    self._times[i] = time
            else:
                self._grow(n + 1)
                for arr, v in ((self._steps, step), (self._times, time), (self._values, value)):
                    arr[i + 1 : n + 1] = arr[i:n].copy()
                    arr[i] = v
                self._n += 1
            self._smooth_cache = None  # not a plain append: smoothing starts over
            self._pyramids.clear()
        self.version += 1

    def extend(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        """Bulk append of points whose steps all follow the last one (a history load). Values
        must be finite (``add_points`` drops the others): the charts draw them unchecked."""
        steps = np.asarray(steps, dtype=np.float64)
        k = steps.size
        if k == 0:
            return
        rising = bool(np.all(steps[1:] > steps[:-1]))
        if (self._n and steps[0] <= self._steps[self._n - 1]) or not rising:
            for s, v, t in zip(steps, values, times, strict=True):
                self.add(float(s), float(v), float(t))
            return
        steps = self._fit_steps(steps)
        self._grow(self._n + k)
        self._steps[self._n : self._n + k] = steps
        self._values[self._n : self._n + k] = values
        self._times[self._n : self._n + k] = times
        self._n += k
        self.version += 1

    def smoothed(self, weight: float) -> np.ndarray:
        """ema(values, weight), extended incrementally while points are only appended."""
        if weight <= 0:
            return self.values
        cache = self._smooth_cache
        if cache is None or cache[0] != weight or cache[1] > self._n:
            cache = (weight, 0, 0.0, np.empty(0))
        _, done, state, smooth = cache
        if done < self._n:
            raw, state = _ema_raw(self._values[done : self._n], weight, state)
            counts = np.arange(done + 1, self._n + 1, dtype=np.float64)
            if smooth.size < self._n:  # grown like the series: no copy of it all per frame
                grown = np.empty(max(self._n, 2 * smooth.size), dtype=np.float64)
                grown[:done] = smooth[:done]
                smooth = grown
            smooth[done : self._n] = raw / (1.0 - weight**counts)
        self._smooth_cache = (weight, self._n, state, smooth)
        return smooth[: self._n]

    def decimated(
        self,
        x: np.ndarray,
        weight: float,
        lo: float | None = None,
        hi: float | None = None,
        budget: int = 2000,
    ) -> tuple[np.ndarray, np.ndarray]:
        """What to draw for x in [lo, hi] (None: everything): the points themselves, or the
        min and max of blocks when there are more than about two per pixel."""
        values = self.smoothed(weight) if weight > 0 else self.values
        i0 = 0 if lo is None else max(int(np.searchsorted(x, lo)) - 1, 0)
        i1 = self._n if hi is None else min(int(np.searchsorted(x, hi)) + 1, self._n)
        if weight not in self._pyramids and len(self._pyramids) > 1:
            self._pyramids.clear()  # the slider moved: keep raw and the latest weight only
        pyramid = self._pyramids.setdefault(weight, Pyramid())
        return pyramid.decimate(x, values, i0, max(i1, i0), budget)


class JobSeries:
    """Every metric of one job."""

    def __init__(self) -> None:
        self.series: dict[str, Series] = {}
        self.start_time: float | None = None  # wall time of the first point: x=0 in time mode
        # fields that are not numbers (a phase name, a flag), by step: not drawn, but exported
        self.other: dict[float, dict[str, Any]] = {}

    def get(self, metric: str) -> Series | None:
        return self.series.get(metric)

    def relative_times(self, metric: str) -> np.ndarray:
        s = self.series[metric]
        return s.times - (self.start_time or 0.0)


class ChartData:
    """Series per job per metric. ``add_points`` returns the metrics that changed."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobSeries] = {}

    def job(self, job_id: str) -> JobSeries:
        return self.jobs.setdefault(job_id, JobSeries())

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def has(self, job_id: str) -> bool:
        return job_id in self.jobs

    def add_points(
        self, job_id: str, points: Iterable[Mapping[str, Any]], received_at: float | None = None
    ) -> set[str]:
        job = self.job(job_id)
        changed: set[str] = set()
        for point in points:
            step = point.get("step")
            if not isinstance(step, int | float) or isinstance(step, bool):
                continue
            when = parse_timestamp(point.get("timestamp"))
            if when is None:
                when = received_at if received_at is not None else math.nan
            if job.start_time is None and not math.isnan(when):
                job.start_time = when
            for metric, value in point.items():
                if metric in NOT_METRICS or value is None:
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool):
                    job.other.setdefault(float(step), {})[metric] = value
                    continue
                if not math.isfinite(value):
                    continue
                series = job.series.get(metric)
                if series is None:
                    series = job.series[metric] = Series()
                series.add(float(step), float(value), when)
                changed.add(metric)
        return changed

    def metrics(self, job_ids: Iterable[str]) -> list[str]:
        """Metrics with data for any of the jobs, in the contract's order, extras last."""
        found: set[str] = set()
        for job_id in job_ids:
            job = self.jobs.get(job_id)
            if job:
                found.update(m for m, s in job.series.items() if len(s))
        named = [m for m in METRIC_FIELDS if m in found]
        return named + sorted(found - set(named))

    def panels(self, job_ids: Iterable[str]) -> list[Panel]:
        """The panels that have something to draw."""
        keys = {panel_of(m) for m in self.metrics(job_ids) if drawn(m)}
        fixed = [p for p in PANELS if p.key in keys]
        return fixed + [panel(k) for k in sorted(keys - {p.key for p in fixed})]

    def rows(self, job_id: str) -> list[dict[str, Any]]:
        """A job's points as the store gives them back (step, fields, ISO timestamp), for
        export."""
        job = self.jobs.get(job_id)
        if job is None:
            return []
        table: dict[float, dict[str, Any]] = {}
        for metric, series in job.series.items():
            for step, value, when in zip(series.steps, series.values, series.times, strict=True):
                row = table.setdefault(float(step), {})
                row[metric] = float(value)
                if "timestamp" not in row and not math.isnan(when):
                    row["timestamp"] = _iso(float(when))
        for step, fields in job.other.items():
            table.setdefault(step, {}).update(fields)
        return [
            {"step": int(step) if step.is_integer() else step, **table[step]}
            for step in sorted(table)
        ]

    def write_csv(self, job_ids: Iterable[str], out: IO[str], labels: Mapping[str, str]) -> int:
        """The CSV of ``tunedeck export`` for these jobs (app.core.metrics_csv); rows written."""
        jobs = [JobRows(j, labels.get(j, j), self.rows(j)) for j in job_ids if j in self.jobs]
        return write_metrics_csv(jobs, out)


def _iso(when: float) -> str:
    """Seconds since the epoch as the contract writes timestamps (trainer.events.utc_now_iso)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
