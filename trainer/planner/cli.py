"""``python -m trainer plan``: the plan of a run config, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer.config import RunConfig, load_config
from trainer.planner.fit import GpuOffer
from trainer.planner.gpu_list import GpuListError, read_gpu_file
from trainer.planner.model_shapes import ModelShapeError
from trainer.planner.plan import make_plan
from trainer.planner.table import format_plan, plan_json

EXIT_USER_ERROR = 2


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="run config JSON file")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--gpus",
        type=Path,
        default=None,
        help="GPU types to check (JSON: the app's RunPod gpu_table.json or a list of "
        "{name, memory_gb, price_per_hour}); default: this computer's GPUs only",
    )
    p.add_argument("--gpu", default=None, help="the GPU the run is meant for (a name in the list)")


def print_plan(
    config: Path,
    cfg: RunConfig,
    gpus: list[GpuOffer],
    *,
    as_json: bool,
    target: str | None = None,
) -> int:
    """Plan ``cfg`` (read from ``config``) against ``gpus`` and print it."""
    try:
        plan = make_plan(cfg, gpus, base_dir=Path.cwd(), target=target)
    except ModelShapeError as err:
        print(f"error: {config}: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(json.dumps(plan_json(plan), indent=2) if as_json else format_plan(plan))
    return 0


def cmd_plan(ns: argparse.Namespace) -> int:
    cfg = load_config(ns.config)
    try:
        gpus = read_gpu_file(ns.gpus, cfg.runpod.cloud) if ns.gpus else []
    except GpuListError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    return print_plan(ns.config, cfg, gpus, as_json=ns.json, target=ns.gpu)
