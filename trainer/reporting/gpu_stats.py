"""GPU memory and utilisation of every GPU this process uses (nothing without CUDA).

Memory is summed over the devices this process has allocated on (a model spread over several
GPUs with device_map counts them all); utilisation is their mean. In a multi-process run each
process reports its own GPUs and the callback sums them across ranks. Sizes are GiB (2**30).

Utilisation is read through NVML (the ``nvidia-ml-py`` package, module ``pynvml``, a dependency
of the trainer). Where NVML cannot be used (package missing, no driver, a container without the
library, a device that does not report it) the field is left out, with one debug line per run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("trainer.reporting")

GIB = float(2**30)
_cuda: bool | None = None  # torch.cuda.is_available(), asked once


class NvmlUtilization:
    """Reads utilisation per CUDA device through NVML; gives up for good at the first failure.

    CUDA device ``i`` is NVML device ``i`` unless CUDA_VISIBLE_DEVICES renumbers them (by index
    or by UUID)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: dict[int, Any] = {}
        self.unavailable: str | None = None

    def percent(self, devices: Sequence[int]) -> list[float]:
        """Utilisation (0-100) of each of ``devices``; [] when NVML cannot say."""
        if self.unavailable is not None or not devices:
            return []
        try:
            nvml = self._init()
            return [float(nvml.nvmlDeviceGetUtilizationRates(self._handle(i)).gpu) for i in devices]
        except Exception as err:  # pynvml.NVMLError and its many subclasses, ImportError
            self.unavailable = f"{type(err).__name__}: {err}"
            log.debug("GPU utilisation is left out of the metrics: NVML unusable (%s)", err)
            return []

    def _init(self) -> Any:
        if self._nvml is None:
            import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no types

            pynvml.nvmlInit()
            self._nvml = pynvml
        return self._nvml

    def _handle(self, device: int) -> Any:
        if device not in self._handles:
            visible = [
                v.strip()
                for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
                if v.strip()
            ]
            name = visible[device] if device < len(visible) else str(device)
            if name.isdigit():
                self._handles[device] = self._nvml.nvmlDeviceGetHandleByIndex(int(name))
            else:
                self._handles[device] = self._nvml.nvmlDeviceGetHandleByUUID(name)
        return self._handles[device]


utilization = NvmlUtilization()


def local_gpu_stats() -> dict[str, float]:
    """``allocated``/``reserved`` bytes, ``util_sum`` and ``util_count`` over GPUs in use."""
    global _cuda
    import torch

    if _cuda is None:
        _cuda = torch.cuda.is_available()
    if not _cuda or not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return {}
    devices = [i for i in range(torch.cuda.device_count()) if torch.cuda.memory_reserved(i) > 0]
    if not devices:
        return {}
    percents = utilization.percent(devices)
    return {
        "allocated": float(sum(torch.cuda.memory_allocated(i) for i in devices)),
        "reserved": float(sum(torch.cuda.memory_reserved(i) for i in devices)),
        "devices": float(len(devices)),
        "util_sum": sum(percents),
        "util_count": float(len(percents)),
    }


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
