"""GPU lists given to the planner as a file: RunPod's table shipped with the app
(``{"gpus": [{"id", "memory_gb", "secure_price", "community_price"}, ...]}``) or a plain list of
``{"name", "memory_gb", "price_per_hour"}``. The trainer cannot import the app's catalog, so
``python -m trainer plan --gpus FILE`` reads one of these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.planner.fit import GpuOffer


class GpuListError(ValueError):
    """The GPU file is unreadable; the message names the file and the entry."""


def offers_from_json(doc: Any, cloud: str = "secure", source: str = "GPU list") -> list[GpuOffer]:
    rows = doc.get("gpus") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise GpuListError(f"{source}: expected a list of GPUs or an object with 'gpus'")
    offers = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise GpuListError(f"{source}: gpus[{i}] is not an object")
        name = row.get("id") or row.get("name")
        memory = row.get("memory_gb")
        if not isinstance(name, str) or not isinstance(memory, int | float):
            raise GpuListError(f"{source}: gpus[{i}] needs a name (or id) and memory_gb")
        price = row.get("price_per_hour", row.get(f"{cloud}_price"))
        offers.append(
            GpuOffer(name, float(memory), float(price) if isinstance(price, int | float) else None)
        )
    return offers


def read_gpu_file(path: Path, cloud: str = "secure") -> list[GpuOffer]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise GpuListError(f"{path}: cannot read the GPU list ({err})") from None
    return offers_from_json(doc, cloud, str(path))
