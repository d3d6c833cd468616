"""Series, smoothing, decimation and CSV export behind the charts (no Qt)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from app.ui.chart_data import ChartData, Series, ema, panel_of


def _tensorboard_ema(values: list[float], weight: float) -> list[float]:
    out, last = [], 0.0
    for i, v in enumerate(values):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** (i + 1)))
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.95, 0.999])
def test_ema_matches_tensorboards_smoothing(weight: float) -> None:
    values = list(np.random.default_rng(1).normal(2.0, 0.5, 3000))
    np.testing.assert_allclose(ema(np.array(values), weight), _tensorboard_ema(values, weight))


def test_smoothing_extends_as_points_arrive() -> None:
    values = np.random.default_rng(2).normal(size=500)
    series = Series()
    for i, v in enumerate(values[:300]):
        series.add(i, float(v), 0.0)
    series.smoothed(0.8)
    for i, v in enumerate(values[300:], start=300):
        series.add(i, float(v), 0.0)
    np.testing.assert_allclose(series.smoothed(0.8), ema(values, 0.8))


def test_a_repeated_step_replaces_its_value_and_a_late_one_is_inserted_in_order() -> None:
    data = ChartData()
    data.add_points("j", [{"step": 1, "train_loss": 3.0}, {"step": 3, "train_loss": 2.0}])
    data.add_points("j", [{"step": 3, "train_loss": 1.5}, {"step": 2, "train_loss": 2.5}])
    series = data.job("j").get("train_loss")
    assert list(series.steps) == [1, 2, 3]
    assert list(series.values) == [3.0, 2.5, 1.5]


def test_nulls_non_finite_and_non_numbers_are_not_drawn() -> None:
    data = ChartData()
    changed = data.add_points(
        "j",
        [
            {"step": 1, "train_loss": None, "grad_norm": float("nan"), "note": "x", "ok": True},
            {"step": 2, "train_loss": 1.0, "timestamp": "2026-01-01T00:00:00Z"},
        ],
    )
    assert changed == {"train_loss"}
    assert data.metrics(["j"]) == ["train_loss"]


def test_metrics_go_to_their_panels_and_extras_to_the_methods_own() -> None:
    assert panel_of("eval_loss") == "loss"
    assert panel_of("gpu_memory_reserved_gb") == "gpu_memory"
    assert panel_of("rewards/margins") == panel_of("eval_rewards/chosen") == "method:rewards"
    assert panel_of("mean_token_accuracy") == "method"
    assert panel_of("eval_perplexity") == "perplexity"
    data = ChartData()
    data.add_points(
        "j",
        [
            {
                "step": 1,
                "train_loss": 1.0,
                "rewards/margins": 0.2,
                "entropy": 2.0,
                "epoch": 0.1,  # bookkeeping: kept for CSV, not drawn
                "num_tokens": 512.0,
                "eval_runtime": 0.5,
                "eval_samples_per_second": 80.0,
            }
        ],
    )
    panels = data.panels(["j"])
    assert [p.key for p in panels] == ["loss", "method", "method:rewards"]
    assert panels[-1].title == "Method figures: rewards"
    assert "num_tokens" in data.metrics(["j"])  # still exported


def test_wall_time_is_seconds_since_the_jobs_first_point() -> None:
    data = ChartData()
    data.add_points(
        "j",
        [
            {"step": 1, "train_loss": 2.0, "timestamp": "2026-11-28T12:00:00Z"},
            {"step": 2, "train_loss": 1.0, "timestamp": "2026-11-28T12:00:02.500000Z"},
        ],
    )
    assert list(data.job("j").relative_times("train_loss")) == [0.0, 2.5]


def test_csv_export_has_one_row_per_job_and_step() -> None:
    data = ChartData()
    data.add_points("a", [{"step": 1, "train_loss": 2.5}, {"step": 1, "eval_loss": 2.2}])
    data.add_points("a", [{"step": 2, "train_loss": 1.5, "phase": "reward_model"}])
    data.add_points("b", [{"step": 1, "train_loss": 3.0}])
    out = io.StringIO()
    assert data.write_csv(["a", "b"], out, {"a": "run A"}) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {k: v for k, v in rows[0].items() if v} == {
        "job_id": "a",
        "job": "run A",
        "step": "1",
        "train_loss": "2.5",
        "eval_loss": "2.2",
    }
    assert rows[1]["eval_loss"] == "" and rows[2]["job"] == "b"
    assert rows[1]["phase"] == "reward_model"  # a string field is exported, not dropped


def test_the_charts_and_the_cli_export_the_same_columns_and_values(tmp_path: Path) -> None:
    from app.cli import main as cli_main
    from app.core.store import Store

    points = [
        {
            "step": 1,
            "train_loss": 2.5,
            "learning_rate": 1e-4,
            "timestamp": "2026-11-28T12:00:00.000000Z",
        },
        {
            "step": 2,
            "train_loss": 1.25,
            "phase": "policy",
            "rewards/margins": 0.5,
            "n": 3,
            "timestamp": "2026-11-28T12:00:01.500000Z",
        },
    ]
    with Store() as store:
        job = store.create_job(name="parity", method="sft", model="m")
        store.add_metrics(job.id, points)
        stored = store.metrics(job.id)
    target = tmp_path / "cli.csv"
    assert cli_main(["export", job.id, "--csv", "-o", str(target)]) == 0
    data = ChartData()
    data.add_points(job.id, stored)  # what the window loads for a job
    gui = io.StringIO()
    data.write_csv([job.id], gui, {job.id: "parity"})
    assert gui.getvalue() == target.read_text()
    header = gui.getvalue().splitlines()[0].split(",")
    assert header[:4] == ["job_id", "job", "step", "epoch"]
    assert {"phase", "rewards/margins", "n", "timestamp"} <= set(header)


def test_a_million_points_decimate_to_a_few_thousand_and_keep_every_peak() -> None:
    n = 1_000_000
    values = np.random.default_rng(3).normal(size=n)
    values[123_457] = 50.0  # one spike that a plain subsample would lose
    series = Series()
    series.extend(np.arange(n), values, np.zeros(n))
    x, y = series.decimated(series.steps, 0.0, budget=1000)
    assert len(x) <= 4000
    assert y.max() == 50.0 and y.min() == values.min()
    assert x[0] == 0 and x[-1] <= n - 1
    # appending keeps the blocks up to date
    series.add(n, -99.0, 0.0)
    _, y = series.decimated(series.steps, 0.0, budget=1000)
    assert y.min() == -99.0
    # a zoomed window is drawn from finer blocks (or the points themselves)
    x, y = series.decimated(series.steps, 0.0, lo=123_000, hi=124_000, budget=1000)
    assert 122_000 < x[0] <= 123_000 and 124_000 <= x[-1] < 125_000
    assert y.max() == 50.0


def test_a_small_series_is_drawn_point_for_point() -> None:
    series = Series()
    series.extend(np.arange(100), np.arange(100.0), np.zeros(100))
    x, y = series.decimated(series.steps, 0.0, budget=1000)
    assert list(x) == list(y) == list(range(100))


def test_a_stored_point_costs_20_bytes_and_a_whole_view_adds_almost_nothing() -> None:
    """The memory design (issue 8: 8 x 1M points under 400 MB): int32 steps, float64 values and
    times, and only the pyramid levels a view has used."""
    n = 1_000_000
    series = Series()
    steps = np.arange(1, n + 1, dtype=np.float64)
    series.extend(steps, np.random.default_rng(4).normal(size=n), steps)
    assert series.steps.dtype == np.int32
    assert series.bytes_per_point() == 20
    series.decimated(series.steps, 0.0, budget=500)  # what drawing the whole series takes
    assert series.nbytes() <= 20 * n + 64 * 1024
    series.decimated(series.steps, 0.0, lo=1000, hi=9000, budget=500)  # zoomed in: a finer level
    assert series.nbytes() <= 21 * n


def test_fractional_or_huge_steps_widen_the_steps_and_keep_them_exact() -> None:
    series = Series()
    series.extend(np.arange(1, 4), np.ones(3), np.zeros(3))
    series.add(3.5, 2.0, 0.0)
    series.add(2**40, 3.0, 0.0)
    assert series.steps.dtype == np.float64
    assert list(series.steps) == [1, 2, 3, 3.5, 2**40]
    assert list(series.values) == [1, 1, 1, 2, 3]


@pytest.mark.parametrize("n", [700, 2000, 123_457, 1_000_000])
@pytest.mark.parametrize("window", [None, (0.3, 0.6)])
def test_decimation_lands_between_half_the_budget_and_the_budget_and_keeps_the_peaks(
    n: int, window: tuple[float, float] | None
) -> None:
    values = np.random.default_rng(n).normal(size=n)
    series = Series()
    series.extend(np.arange(n), values, np.zeros(n))
    lo, hi = (n * window[0], n * window[1]) if window else (None, None)
    x, y = series.decimated(series.steps, 0.0, lo, hi, budget=268)
    i0 = 0 if lo is None else int(lo)
    i1 = n if hi is None else int(hi) + 2
    if i1 - i0 > 2 * 268:  # min and max of each block, and of the partial last one
        assert 268 < len(x) <= 2 * 268 + 2
    else:
        assert len(x) == i1 - i0  # point for point
    assert np.all(np.diff(x) >= 0)
    inside = values[i0:i1]
    assert y.max() >= inside.max() and y.min() <= inside.min()
    if window is None:
        assert (y.max(), y.min()) == (values.max(), values.min())
