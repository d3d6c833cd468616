"""GPU memory and utilisation of every GPU this process uses (nothing without CUDA).

Memory is summed over the devices this process has allocated on (a model spread over several
GPUs with device_map counts them all); utilisation is their mean. In a multi-process run each
process reports its own GPUs and the callback sums them across ranks. Sizes are GiB (2**30).
Utilisation needs NVML (the ``nvidia-ml-py`` package); without it the field is left out.
"""

from __future__ import annotations

from typing import Any

GIB = float(2**30)
_nvml_broken = False
_cuda: bool | None = None  # torch.cuda.is_available(), asked once


def local_gpu_stats() -> dict[str, float]:
    """``allocated``/``reserved`` bytes, ``util_sum`` and ``util_count`` over GPUs in use."""
    global _nvml_broken, _cuda
    import torch

    if _cuda is None:
        _cuda = torch.cuda.is_available()
    if not _cuda or not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return {}
    devices = [i for i in range(torch.cuda.device_count()) if torch.cuda.memory_reserved(i) > 0]
    if not devices:
        return {}
    stats = {
        "allocated": float(sum(torch.cuda.memory_allocated(i) for i in devices)),
        "reserved": float(sum(torch.cuda.memory_reserved(i) for i in devices)),
        "devices": float(len(devices)),
        "util_sum": 0.0,
        "util_count": 0.0,
    }
    if not _nvml_broken:
        try:
            for i in devices:
                stats["util_sum"] += float(torch.cuda.utilization(i))
                stats["util_count"] += 1
        except Exception:  # no pynvml, or NVML not usable in this container
            _nvml_broken = True
            stats["util_sum"] = stats["util_count"] = 0.0
    return stats


def metric_fields(stats: dict[str, Any]) -> dict[str, float]:
    """The contract's GPU fields from (possibly rank-summed) ``local_gpu_stats`` output."""
    if not stats or not stats.get("devices"):
        return {}
    fields = {
        "gpu_memory_allocated_gb": round(stats["allocated"] / GIB, 4),
        "gpu_memory_reserved_gb": round(stats["reserved"] / GIB, 4),
        "gpu_count": int(stats["devices"]),
    }
    if stats.get("util_count"):
        fields["gpu_utilization_percent"] = round(stats["util_sum"] / stats["util_count"], 1)
    return fields
