"""Cost of reporting to a training run: wall time with reporting on / wall time with it off.

The same tiny-model SFT run (TRL, LoRA, CPU, a metric point at every step: the worst case) is
timed in one process in four ways, interleaved, several repeats, median:

- off:  no reporting session at all (the baseline);
- up:   reporting to a receiver on 127.0.0.1 that answers at once;
- down: reporting to a port where nothing listens (every send fails and is retried);
- slow: reporting to a receiver that answers each request after 2 seconds.

Three ratios per mode: ``train`` is the wall time inside ``trainer.train()`` (what reporting
must not slow down: target <= 1.03); ``train CPU`` is the CPU time this process (training plus
the sender threads) spent in it, which other programs on a busy machine disturb far less than
wall time; ``end-to-end`` also holds model loading and the session's exit, which waits a bounded
time (trainer.reporting.session.FLUSH_SECONDS) to deliver the last events, so on a slow receiver
it grows by a couple of seconds whatever the run's length.

Last, the time the training thread itself spent in reporting code (callback hooks, batch
counting, the NaN check, the event-log write), per step: the cost reporting adds, measured
directly and far less at the mercy of a busy machine than wall-time ratios are.

Run: ``.venv/bin/python bench/reporting_overhead.py [--steps 80 --repeats 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from trainer.contract import CONTRACT_ENV_VARIABLES  # noqa: E402 (after the sys.path line)

MODES = ("off", "up", "down", "slow")


def receiver_process(delay: float) -> tuple[subprocess.Popen[str], str]:
    """The app's receiver in a process of its own, as the desktop's receiver would be: its work
    must not be counted as the trainer's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.trainer.live_receiver", "--delay", str(delay)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def env(url: str) -> dict[str, str]:
    return {
        "JOB_ID": "bench",
        "JOB_TOKEN": "job-token",
        "INTERNAL_API_KEY": "api-key",
        "METRICS_API_URL": url + "/api/training/local/metrics",
        "ALERT_API_URL": url + "/api/alerts/trigger",
    }


def time_reporting_hooks() -> dict[str, float]:
    """Wrap the reporting code that runs on the training thread; returns the running totals.

    Time spent there is the cost reporting can add to a step, measured directly: unlike wall
    time, it does not swing with whatever else the machine is doing."""
    import functools

    from trainer.reporting.callback import ReportingCallback
    from trainer.reporting.throughput import ThroughputMeter

    totals = {"seconds": 0.0}

    def timed(cls: type, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*args: object, **kwargs: object) -> object:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals["seconds"] += time.perf_counter() - began

        setattr(cls, name, wrapper)

    for name in ("on_train_begin", "on_step_end", "on_log", "on_save", "observe_loss"):
        timed(ReportingCallback, name)
    timed(ThroughputMeter, "count")
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=80, help="optimiser steps per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per mode")
    ns = parser.parse_args()

    import torch
    import transformers

    torch.set_num_threads(int(os.environ.get("TUNEDECK_TORCH_THREADS", "1")))
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("trainer.reporting").setLevel(logging.ERROR)  # "down" warns, by design

    from tests.trainer.live_receiver import free_port
    from tests.trainer.reporting_runs import run_config, session_run
    from trainer.tiny_model import build_tiny_llama

    hooks = time_reporting_hooks()
    hook_s: dict[str, list[float]] = {m: [] for m in MODES}
    work = Path(tempfile.mkdtemp(prefix="tunedeck-bench-"))
    model_dir = build_tiny_llama(work / "model")
    cfg = run_config(
        model_dir,
        work / "out",
        training={"max_steps": ns.steps},
        logging={"logging_steps": 1},
        checkpoint={"save_strategy": "no"},
        evaluation={"strategy": "no"},
    )
    up, up_url = receiver_process(0.0)
    slow, slow_url = receiver_process(2.0)
    down_url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    envs = {"off": None, "up": env(up_url), "slow": env(slow_url), "down": env(down_url)}

    train_s: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_s: dict[str, list[float]] = {m: [] for m in MODES}
    total_s: dict[str, list[float]] = {m: [] for m in MODES}
    with contextlib.redirect_stdout(io.StringIO()):
        session_run(cfg, model_dir, work / "warm-up", reporting=False)  # first-run costs
    for rep in range(ns.repeats):
        order = MODES[rep % len(MODES) :] + MODES[: rep % len(MODES)]  # rotate the order
        for mode in order:
            for key in CONTRACT_ENV_VARIABLES:
                os.environ.pop(key, None)
            os.environ.update(envs[mode] or {})
            began, hooks["seconds"] = time.perf_counter(), 0.0
            with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints its logs
                run = session_run(
                    cfg, model_dir, work / f"{mode}-{rep}", reporting=envs[mode] is not None
                )
            total_s[mode].append(time.perf_counter() - began)
            if run.error is not None:
                raise run.error
            train_s[mode].append(run.seconds)
            cpu_s[mode].append(run.cpu_seconds)
            hook_s[mode].append(hooks["seconds"])
        print(f"repeat {rep + 1}/{ns.repeats} done", file=sys.stderr)
    for proc in (up, slow):
        proc.communicate("")  # closing stdin stops it

    def median_ratio(samples: dict[str, list[float]], mode: str) -> tuple[float, float]:
        value = statistics.median(samples[mode])
        return value, value / statistics.median(samples["off"])

    print(
        f"tiny-model SFT, {ns.steps} steps, a metric point every step, {ns.repeats} repeats, "
        f"median; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'mode':<6} {'train s':>8} {'ratio':>6}   {'train CPU s':>11} {'ratio':>6}   "
        f"{'end-to-end s':>12} {'ratio':>6}"
    )
    worst = 0.0
    for mode in MODES:
        (t, tr), (c, cr), (e, er) = (median_ratio(x, mode) for x in (train_s, cpu_s, total_s))
        if mode != "off":
            worst = max(worst, tr)
        print(f"{mode:<6} {t:>8.3f} {tr:>6.3f}   {c:>11.3f} {cr:>6.3f}   {e:>12.3f} {er:>6.3f}")
    verdict = "meets" if worst <= 1.03 else "MISSES"
    print(f"worst train wall-time ratio {worst:.3f}: {verdict} the 1.03 target")
    step_us = statistics.median(train_s["off"]) / ns.steps * 1e6
    for mode in MODES[1:]:
        per_step = statistics.median(hook_s[mode]) / ns.steps * 1e6
        print(
            f"{mode}: reporting code on the training thread {per_step:.0f} us per step "
            f"= {per_step / step_us:.1%} of a {step_us / 1000:.1f} ms step"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
