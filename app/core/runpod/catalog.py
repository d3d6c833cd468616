"""GPU types: the dated offline table shipped with the app (gpu_table.json, for when no key is
stored) and the choice of alternatives in stock at a similar price."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.runpod.models import Cloud, GpuType

GPU_TABLE_PATH = Path(__file__).with_name("gpu_table.json")


@dataclass(frozen=True)
class GpuTable:
    """The offline table: ``generated`` is its date; its prices are indicative only."""

    generated: str
    source: str
    gpus: tuple[GpuType, ...]


@functools.cache
def load_gpu_table(path: Path = GPU_TABLE_PATH) -> GpuTable:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return GpuTable(
        generated=str(doc["generated"]),
        source=str(doc["source"]),
        gpus=tuple(_table_row(row) for row in doc["gpus"]),
    )


def _table_row(row: dict[str, Any]) -> GpuType:
    return GpuType(
        id=row["id"],
        display_name=row["name"],
        memory_gb=int(row["memory_gb"]),
        secure_price=row["secure_price"],
        community_price=row["community_price"],
        stock=None,  # the table cannot know; only the live catalog says what is free now
        max_count=max(int(row["max_count_secure"]), int(row["max_count_community"])),
    )


def similar_in_stock(
    gpus: Iterable[GpuType],
    wanted_id: str,
    cloud: Cloud,
    *,
    gpu_count: int = 1,
    limit: int = 3,
) -> list[GpuType]:
    """Types in stock in ``cloud`` (enough of them for ``gpu_count``), closest in price to
    ``wanted_id`` first; at least as much memory breaks ties. Without a known price for the wanted
    type, cheapest first."""
    gpus = list(gpus)
    wanted = next((gpu for gpu in gpus if gpu.id == wanted_id), None)
    target = wanted.price(cloud) if wanted else None
    memory = wanted.memory_gb if wanted else 0
    candidates = [
        gpu
        for gpu in gpus
        if gpu.id != wanted_id
        and gpu.in_stock
        and gpu.price(cloud) is not None
        and gpu.max_count >= gpu_count
    ]

    def distance(gpu: GpuType) -> tuple[float, int, float]:
        price = gpu.price(cloud) or 0.0
        return (
            abs(price - target) if target is not None else price,
            0 if gpu.memory_gb >= memory else 1,
            price,
        )

    return sorted(candidates, key=distance)[:limit]
