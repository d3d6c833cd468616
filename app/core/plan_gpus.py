"""The GPUs the planner checks a run against: RunPod's GPU types (the live catalog when a key is
stored, else the dated table shipped with the app) as ``trainer.planner.GpuOffer``s.

The planner lives in the trainer and may not import the app, so the app hands it this list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.core.runpod.catalog import load_gpu_table
from app.core.runpod.client import RUNPOD_API_BASE
from app.core.runpod.models import Cloud, GpuType
from trainer.planner import GpuOffer


@dataclass(frozen=True)
class GpuOffers:
    offers: tuple[GpuOffer, ...]
    source: str  # where the prices come from, in words


def offers_from_types(gpus: Iterable[GpuType], cloud: str = "secure") -> list[GpuOffer]:
    """``cloud`` as in the run config ("secure" | "community")."""
    wire: Cloud = "SECURE" if cloud == "secure" else "COMMUNITY"
    return [GpuOffer(g.id, float(g.memory_gb), g.price(wire)) for g in gpus]


def table_offers(cloud: str = "secure") -> GpuOffers:
    table = load_gpu_table()
    return GpuOffers(
        tuple(offers_from_types(table.gpus, cloud)),
        f"RunPod prices from Tunedeck's table of {table.generated} (indicative)",
    )


async def live_offers(
    api_key: str, cloud: str = "secure", base_url: str = RUNPOD_API_BASE
) -> GpuOffers:
    """RunPod's catalog now; raises RunPodError when it cannot be read."""
    from app.core.runpod.client import RunPodClient

    async with RunPodClient(api_key, base_url=base_url) as client:
        gpus = await client.gpu_types()
    return GpuOffers(tuple(offers_from_types(gpus, cloud)), "RunPod prices from the live catalog")
