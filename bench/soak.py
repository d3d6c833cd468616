"""Soak: 10 simulated trainers post into the app's receiver while the window redraws their charts.

The app runs as it does for a user, offscreen: the real MainWindow and ChartsView, the receiver
on the same qasync loop, the Store on a SQLite file in a temporary data folder. Ten jobs with
real tokens are created and all ten are selected, so their charts are overlaid and redrawn as
points arrive. A second process runs the ten simulated trainers (one thread and one keep-alive
connection each): each posts a batch every ``--batch / --rate`` seconds, as a trainer's sender
does, for ``--seconds``, and records every point answered 200 and each request's latency.

Then 8 series of 1,000,000 points are loaded into the charts (a long history overlaid), a few
frames are drawn with one new point a frame, and the app's memory is read.

Printed: points acknowledged, points stored, p99 request latency, frame time p99 (a redraw:
series update, plus the paints of its plots that Qt does after it), the GUI loop's worst
lateness, the app's RSS after the 8M-point load and its peak RSS. Targets: nothing lost, frame
p99 < 33 ms, RSS < 400 MB with 8 x 1M points loaded.

Run: ``.venv/bin/python bench/soak.py [--seconds 120 --trainers 10 --rate 100 --batch 25]``
(``SOAK_DUMP=1`` also prints the slowest frames and the first ones, which build the plots).
CI does not run benches (they print ratios and figures; a busy machine changes them).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_FRAME_P99_MS = 33.0
TARGET_RSS_MB = 400.0
LOAD_SERIES = 8
LOAD_POINTS = 1_000_000
BUILD_FRAMES = 3  # the empty first redraw, then the ones that create the plots and curves


# ------------------------------------------------------------ the trainers (another process)


def _trainer(
    url: str,
    job_id: str,
    token: str,
    seconds: float,
    rate: float,
    batch: int,
    out: dict[str, Any],
) -> None:
    import httpx

    interval = batch / rate
    latencies: list[float] = []
    acked = failed = 0
    step = 0
    end = time.monotonic() + seconds
    max_batches = int(seconds / interval) + 1  # bounded, whatever the clock does
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10.0, headers=headers) as client:
        next_at = time.monotonic()
        for _ in range(max_batches):
            if time.monotonic() >= end:
                break
            points = [
                {
                    "step": s,
                    "train_loss": 2.0 / (1 + s / 500),
                    "learning_rate": 1e-4,
                    "grad_norm": 1.0 + (s % 7) / 10,
                    "tokens_per_second": 1000.0 + s % 100,
                }
                for s in range(step + 1, step + 1 + batch)
            ]
            began = time.perf_counter()
            try:
                answer = client.post(url, json={"job_id": job_id, "metrics": points})
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - began) * 1000)
            if ok:
                acked += batch
            else:
                failed += 1
            step += batch  # a refused batch is not resent: "acknowledged" counts only 200s
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    out[job_id] = {"acked": acked, "failed": failed, "latencies": latencies}


def _trainers(
    url: str, jobs: list[tuple[str, str]], seconds: float, rate: float, batch: int, conn: Any
) -> None:
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=_trainer, args=(url, job_id, token, seconds, rate, batch, results), daemon=True
        )
        for job_id, token in jobs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    conn.send(results)


# --------------------------------------------------------------------------------- the app


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Credentials:
    """The receiver's key for this bench (the keyring is not what is measured here)."""

    def __init__(self) -> None:
        from app.core.tokens import new_api_key

        self.key = new_api_key()

    def receiver_api_key(self) -> str:
        return self.key

    async def get_async(self, name: str) -> str | None:
        return None

    def known_values(self) -> frozenset[str]:
        return frozenset({self.key})


class _FrameClock:
    """Times every frame of the charts: a ChartsView redraw plus the paints of its plots that
    follow before the next redraw, in wall time and in the GUI thread's own CPU time (what the
    frame costs, whatever else the machine runs). The paints are the ones Qt does anyway, from
    the event loop; nothing is repainted on purpose, so no frame is painted twice."""

    def __init__(self, frame_ms: list[float], frame_cpu_ms: list[float]) -> None:
        self.frame_ms, self.frame_cpu_ms = frame_ms, frame_cpu_ms
        self.open: list[float] | None = None  # [wall s, CPU s] of the frame being drawn

    def close(self) -> None:
        """The frame under way is complete (a new redraw starts, or the run ends)."""
        if self.open is not None:
            self.frame_ms.append(self.open[0] * 1000)
            self.frame_cpu_ms.append(self.open[1] * 1000)
            self.open = None

    def install(self) -> None:
        from pyqtgraph.widgets.GraphicsView import GraphicsView  # every pyqtgraph plot's paint

        from app.ui.charts import ChartsView

        clock = self
        redraw, paint = ChartsView.redraw, GraphicsView.paintEvent

        def timed_redraw(self: ChartsView) -> None:
            clock.close()
            began, cpu = time.perf_counter(), time.thread_time()
            redraw(self)
            clock.open = [time.perf_counter() - began, time.thread_time() - cpu]

        def timed_paint(self: GraphicsView, event: Any) -> None:
            began, cpu = time.perf_counter(), time.thread_time()
            paint(self, event)
            if clock.open is not None:  # a paint with no redraw before it (a resize) is no frame
                clock.open[0] += time.perf_counter() - began
                clock.open[1] += time.thread_time() - cpu

        ChartsView.redraw = timed_redraw  # type: ignore[method-assign]
        GraphicsView.paintEvent = timed_paint


def _watch_loop_lag(lags_ms: list[float]) -> Callable[[], None]:
    """How late a 16 ms tick of the GUI loop fires (the window's responsiveness)."""
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.setInterval(16)
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        lags_ms.append(max(0.0, (now - last[0]) * 1000 - 16))
        last[0] = now

    timer.timeout.connect(tick)
    timer.start()
    return timer.stop


def _load_history(
    window: Any, app: Any, frame_ms: list[float], clock: _FrameClock
) -> tuple[float, float]:
    """8 jobs of 1M points each, overlaid; a few frames with a new point a frame. Returns
    (frame p99 ms, RSS MB) with them loaded."""
    import numpy as np

    from app.ui.chart_data import Series

    data = window.chart_data
    rng = np.random.default_rng(0)
    ids = []
    for i in range(LOAD_SERIES):
        job_id = f"history-{i}"
        series = data.job(job_id).series.setdefault("train_loss", Series())
        steps = np.arange(1, LOAD_POINTS + 1, dtype=np.float64)
        values = rng.standard_normal(LOAD_POINTS)  # a random walk, made in place: the bench's
        np.cumsum(values, out=values)  # own temporaries are not what is measured
        values /= 1000
        values += 2.0
        series.extend(steps, values, steps)
        del steps, values
        ids.append(job_id)
    view = window.job_view.charts
    view.set_jobs([(job_id, job_id) for job_id in ids])
    before = len(frame_ms)
    for frame in range(12):
        for job_id in ids:
            data.add_points(job_id, [{"step": LOAD_POINTS + 1 + frame, "train_loss": 2.0}])
        view.redraw()
        app.processEvents()  # its paint
    clock.close()
    return _p99(frame_ms[before + 2 :]), _rss_mb()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long trainers post")
    parser.add_argument("--trainers", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="points a second per trainer")
    parser.add_argument("--batch", type=int, default=25, help="points per request")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tunedeck-soak-"))
    for name in ("DATA", "CONFIG", "CACHE"):  # never the user's own store or settings
        os.environ[f"TUNEDECK_{name}_DIR"] = str(folder / name.lower())
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_API", "pyside6")

    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.notifications import RecordingNotifier
    from app.core.settings import Settings
    from app.core.tokens import hash_token, new_job_token
    from app.main import Tunedeck

    frame_ms: list[float] = []
    frame_cpu_ms: list[float] = []
    clock = _FrameClock(frame_ms, frame_cpu_ms)
    clock.install()
    app = QApplication.instance() or QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    settings = Settings(
        receiver_port=_free_port(), trainer_python=sys.executable, first_run_done=True
    )
    tunedeck = Tunedeck(
        settings=settings,
        credentials=_Credentials(),
        notifier=RecordingNotifier(),
        base_dir=folder / "runs",
    )
    window = tunedeck.window
    window.resize(1400, 900)
    window.show()
    loop.run_until_complete(tunedeck.start())
    store = tunedeck.store

    jobs: list[tuple[str, str]] = []
    for i in range(args.trainers):
        job = store.create_job(name=f"soak-{i}", method="sft", model="builtin:tiny-llama")
        token = new_job_token()
        store.update_job(job.id, token_hash=hash_token(token))
        tunedeck.ingestor.job_changed(store.set_status(job.id, "running"))
        jobs.append((job.id, token))
    loop.run_until_complete(asyncio.sleep(0.3))
    window.table.selectAll()  # all ten overlaid on the charts
    window.job_view.tabs.setCurrentIndex(0)
    app.processEvents()
    shown = window.job_view.overlay_ids()
    assert len(shown) == args.trainers, f"the charts show {len(shown)} jobs"

    lags_ms: list[float] = []
    stop_watch = _watch_loop_lag(lags_ms)
    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    trainers = ctx.Process(
        target=_trainers,
        args=(tunedeck.receiver.metrics_url, jobs, args.seconds, args.rate, args.batch, theirs),
    )
    print(
        f"soak: {args.trainers} trainers x {args.rate:g} points/s in batches of {args.batch} "
        f"for {args.seconds:g} s into {tunedeck.receiver.url}, charts of all {len(shown)} open"
    )
    began = time.monotonic()
    trainers.start()

    async def until_done() -> dict[str, Any]:
        while not mine.poll():
            await asyncio.sleep(0.1)
        result: dict[str, Any] = mine.recv()
        return result

    results = loop.run_until_complete(asyncio.wait_for(until_done(), args.seconds + 120))
    soak_s = time.monotonic() - began
    trainers.join(10)
    loop.run_until_complete(asyncio.sleep(0.5))  # the last redraw
    clock.close()
    stop_watch()
    soak_frames = list(frame_ms)
    soak_cpu = list(frame_cpu_ms)
    soak_peak = _rss_mb("VmHWM")

    acked = sum(r["acked"] for r in results.values())
    refused = sum(r["failed"] for r in results.values())
    stored = sum(store.metric_count(job_id) for job_id, _ in jobs)
    latencies = [ms for r in results.values() for ms in r["latencies"]]
    rss_before = _rss_mb()
    history_p99, rss_loaded = _load_history(window, app, frame_ms, clock)
    peak = _rss_mb("VmHWM")

    lost = acked - stored
    frame_p99 = _p99(soak_frames)
    print(f"  time                      {soak_s:10.1f} s")
    print(f"  points acknowledged       {acked:10d}   ({refused} requests not answered 200)")
    print(f"  points stored             {stored:10d}   lost: {lost}")
    p50 = statistics.median(latencies)
    print(
        f"  request latency p50 / p99 {p50:7.1f} / {_p99(latencies):.1f} ms"
        f"   ({len(latencies)} requests)"
    )
    print(f"  redraws during the soak   {len(soak_frames):10d}")
    print(
        f"  frame time p50 / p99      {statistics.median(soak_frames):7.1f} / {frame_p99:.1f} ms"
        f"   (target p99 < {TARGET_FRAME_P99_MS:g} ms)"
    )
    print(
        f"  frame CPU p50 / p99       {statistics.median(soak_cpu):7.1f} / {_p99(soak_cpu):.1f} ms"
        "   (the GUI thread's own CPU time: what the frame costs on an idle machine)"
    )
    # the first frames after the ten jobs are selected build the plots, curves and legends: the
    # steady figures leave them out (the targets above do not)
    steady_wall, steady_cpu = soak_frames[BUILD_FRAMES:], soak_cpu[BUILD_FRAMES:]
    print(
        f"  steady frames p99 wall/CPU {_p99(steady_wall):6.1f} / {_p99(steady_cpu):.1f} ms"
        f"   (all but the first {BUILD_FRAMES}, which build the plots)"
    )
    if os.environ.get("SOAK_DUMP"):
        print("  slowest frames CPU ms", [round(v, 1) for v in sorted(soak_cpu)[-8:]])
        print("  first frames CPU ms", [round(v, 1) for v in soak_cpu[:8]])
        print("  slowest frames wall ms", [round(v, 1) for v in sorted(soak_frames)[-8:]])
    print(f"  GUI loop lateness p99/max {_p99(lags_ms):7.1f} / {max(lags_ms, default=0):.1f} ms")
    print(
        f"  peak RSS during the soak  {soak_peak:10.0f} MB"
        f"   (RSS before the history load {rss_before:.0f} MB)"
    )
    print(
        f"  with {LOAD_SERIES} x {LOAD_POINTS:,} points loaded: frame p99 {history_p99:.1f} ms, "
        f"RSS {rss_loaded:.0f} MB, peak RSS {peak:.0f} MB (target RSS < {TARGET_RSS_MB:g} MB)"
    )
    verdicts = [
        ("nothing lost", lost == 0 and refused == 0),
        (f"frame p99 < {TARGET_FRAME_P99_MS:g} ms", frame_p99 < TARGET_FRAME_P99_MS),
        (f"RSS < {TARGET_RSS_MB:g} MB with 8 x 1M points", rss_loaded < TARGET_RSS_MB),
    ]
    for name, ok in verdicts:
        print(f"  {'meets' if ok else 'MISSES'}: {name}")

    loop.run_until_complete(tunedeck.stop() if hasattr(tunedeck, "stop") else asyncio.sleep(0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
