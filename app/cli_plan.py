"""``tunedeck plan CONFIG``: memory, time and cost of a run before it starts, checked against
this computer's GPUs and every RunPod GPU type (live prices when a RunPod key is stored, else
the table shipped with the app). Prints the same table as ``python -m trainer plan``."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from app.core.plan_gpus import GpuOffers, live_offers, table_offers
from trainer.config import load_config
from trainer.planner import ModelShapeError, format_plan, make_plan, plan_json

EXIT_OK, EXIT_USER_ERROR = 0, 2


async def catalog_offers(cloud: str) -> GpuOffers:
    """The live catalog when a RunPod key is stored and answers, else the shipped table."""
    from app.core.credentials import CredentialStore
    from app.core.runpod.endpoints import runpod_endpoints
    from app.core.runpod.errors import RunPodError

    try:
        key = await CredentialStore().get_async("runpod_api_key")
    except Exception:  # no keyring here: the table is the answer, not an error
        key = None
    if key:
        try:
            return await live_offers(key, cloud, runpod_endpoints().api_url)
        except (RunPodError, OSError):
            pass
    return table_offers(cloud)


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    cfg = load_config(args.config)
    offers = (
        table_offers(cfg.runpod.cloud)
        if args.offline
        else asyncio.run(catalog_offers(cfg.runpod.cloud))
    )
    try:
        plan = make_plan(cfg, offers.offers, base_dir=Path.cwd(), target=args.gpu)
    except ModelShapeError as err:
        Console(stderr=True).print(f"error: {args.config}: {err}", markup=False, highlight=False)
        return EXIT_USER_ERROR
    if args.json:
        print(json.dumps({**plan_json(plan), "gpu_source": offers.source}, indent=2))
    else:
        print(format_plan(plan))
        print(f"note: {offers.source}")
    return EXIT_OK


def add_commands(sub: Any) -> dict[str, Any]:
    plan = sub.add_parser("plan", help="memory, time and cost of CONFIG before launching it")
    plan.add_argument("config", type=Path, help="run config JSON")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--gpu", default=None, help="the GPU the run is meant for")
    plan.add_argument(
        "--offline",
        action="store_true",
        help="use the GPU table shipped with the app, even when a RunPod key is stored",
    )
    return {"plan": cmd_plan}
