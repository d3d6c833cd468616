"""GPU figures: utilisation through NVML (nvidia-ml-py), and a clean absence without a GPU.

This machine has the real pynvml but no NVIDIA driver, so "NVML cannot start" is tested for
real (on a machine with a driver, NVML's start is made to fail as it fails here). A GPU cannot
exist here: where the test needs one, NVML's functions and torch.cuda's
device queries are replaced (and only those).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

pynvml = pytest.importorskip("pynvml")  # nvidia-ml-py: a dependency of the train extra
torch = pytest.importorskip("torch")

from trainer.reporting import gpu_stats  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: NVML not tried yet, CUDA not asked yet."""
    monkeypatch.setattr(gpu_stats, "utilization", gpu_stats.NvmlUtilization())
    monkeypatch.setattr(gpu_stats, "_cuda", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_without_a_driver_utilisation_is_absent_with_one_debug_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:  # the premise: the package is there, NVML is not (real here: no NVIDIA driver)
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:  # a machine with a driver: NVML answers as it does without one
        pynvml.nvmlShutdown()
        monkeypatch.setattr(pynvml, "nvmlInit", _driver_not_loaded)
    with caplog.at_level(logging.DEBUG, logger="trainer.reporting"):
        for _ in range(50):  # a metric point at every step of a run
            assert gpu_stats.utilization.percent([0, 1]) == []
        if not torch.cuda.is_available():  # no CUDA either: nothing at all, no error
            assert gpu_stats.local_gpu_stats() == {}
    lines = [r for r in caplog.records if "NVML" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert "GPU utilisation is left out" in lines[0].getMessage()
    assert gpu_stats.utilization.unavailable is not None


def _driver_not_loaded() -> None:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)


@dataclass
class Rates:
    gpu: int
    memory: int = 0


class FakeNvml:
    """NVML on a machine with four GPUs, each busy a known percentage."""

    def __init__(self, busy: dict[int, int]) -> None:
        self.busy = busy
        self.inits = 0
        self.asked: list[int] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pynvml, "nvmlInit", self.init)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: ("handle", i))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", self.by_uuid)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", self.rates)

    def init(self) -> None:
        self.inits += 1

    def by_uuid(self, uuid: str) -> tuple[str, int]:
        return ("handle", int(uuid.removeprefix("GPU-fake-")))

    def rates(self, handle: tuple[str, int]) -> Rates:
        self.asked.append(handle[1])
        return Rates(gpu=self.busy[handle[1]])


def fake_cuda(monkeypatch: pytest.MonkeyPatch, reserved: list[int], allocated: list[int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(reserved))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: reserved[i])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: allocated[i])


def test_utilisation_is_the_mean_over_every_gpu_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml({0: 90, 1: 10, 2: 60, 3: 70})
    nvml.install(monkeypatch)
    gib = 2**30
    # three CUDA devices visible; the model sits on the first and the last (device_map)
    fake_cuda(monkeypatch, reserved=[4 * gib, 0, 2 * gib], allocated=[3 * gib, 0, gib])
    for _ in range(3):
        stats = gpu_stats.local_gpu_stats()
    assert gpu_stats.metric_fields(stats) == {
        "gpu_memory_allocated_gb": 4.0,
        "gpu_memory_reserved_gb": 6.0,
        "gpu_count": 2,
        "gpu_utilization_percent": 75.0,  # (90 + 60) / 2: the idle device 1 is not in use
    }
    assert nvml.inits == 1 and nvml.asked == [0, 2] * 3


def test_cuda_visible_devices_maps_cuda_numbers_to_nvml_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvml = FakeNvml({0: 5, 1: 10, 2: 60, 3: 80})
    nvml.install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,GPU-fake-2")  # by index and by UUID
    assert gpu_stats.utilization.percent([0, 1]) == [80.0, 60.0]


def test_a_device_that_cannot_report_leaves_utilisation_out_for_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nvml = FakeNvml({0: 50})
    nvml.install(monkeypatch)

    def not_supported(handle: Any) -> Rates:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)  # e.g. a MIG slice

    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", not_supported)
    gib = 2**30
    fake_cuda(monkeypatch, reserved=[gib], allocated=[gib])
    with caplog.at_level(logging.DEBUG, logger="trainer.reporting"):
        first, second = gpu_stats.local_gpu_stats(), gpu_stats.local_gpu_stats()
    for stats in (first, second):
        fields = gpu_stats.metric_fields(stats)
        assert fields["gpu_memory_reserved_gb"] == 1.0
        assert "gpu_utilization_percent" not in fields
    assert len([r for r in caplog.records if "NVML" in r.getMessage()]) == 1
