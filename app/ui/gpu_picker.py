"""The RunPod box of the New Run dialog: GPU types with memory, price and availability, an
estimate of the run's cost, and what the pod does on its own when Tunedeck is not there.

The GPU list is RunPod's live catalog when a key is stored (the app fetches it), else the dated
table shipped with the app (prices indicative, availability unknown). Picking a type writes
``runpod.gpu_type`` in the form; the form stays the one place the config lives.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QWidget

from app.core.runpod.cost import estimate_cost
from app.core.runpod.models import Cloud, GpuType


def gpu_line(gpu: GpuType, cloud: Cloud) -> str:
    """ "RTX A5000 · 24 GB · $0.27/h · stock HIGH" (price per GPU)."""
    price = gpu.price(cloud)
    parts = [gpu.display_name, f"{gpu.memory_gb} GB"]
    parts.append(f"${price:.2f}/h" if price is not None else f"not in the {cloud.lower()} cloud")
    if gpu.stock is not None:
        parts.append("out of stock" if not gpu.in_stock else f"stock {gpu.stock.lower()}")
    return " · ".join(parts)


def estimate_text(
    gpu: GpuType | None,
    cloud: Cloud,
    gpu_count: int,
    max_runtime_minutes: float | None,
    budget_usd: float | None,
) -> str:
    price = gpu.price(cloud) if gpu is not None else None
    if price is None:
        return "No price known for this GPU type in this cloud."
    per_hour = price * gpu_count
    text = f"${per_hour:.2f} an hour for {gpu_count} GPU{'s' if gpu_count > 1 else ''}"
    most = estimate_cost(price, gpu_count, max_runtime_minutes)
    if most is not None:
        text += f"; at most ${most:.2f} in the max runtime ({max_runtime_minutes:g} min)"
    if budget_usd is not None:
        text += f"; the run stops at its ${budget_usd:.2f} budget"
    elif most is None:
        text += "; no max runtime or budget: set one to cap the cost"
    return text + ". Provisioning and installing are billed too (a few minutes)."


class GpuPicker(QGroupBox):
    """``gpu_chosen(id)`` when the user picks a type."""

    gpu_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("RunPod GPU", parent)
        self.setObjectName("gpuPicker")
        self._gpus: list[GpuType] = []
        self._cloud: Cloud = "SECURE"
        form = QFormLayout(self)
        self.combo = QComboBox(self)
        self.combo.setObjectName("gpuCombo")
        self.combo.activated.connect(self._picked)
        form.addRow("GPU type", self.combo)
        self.source = QLabel(self)
        self.source.setObjectName("gpuSource")
        self.source.setWordWrap(True)
        form.addRow("", self.source)
        self.estimate = QLabel(self)
        self.estimate.setObjectName("costEstimate")
        self.estimate.setWordWrap(True)
        form.addRow("Cost", self.estimate)
        self.guard = QLabel(self)
        self.guard.setObjectName("podGuard")
        self.guard.setWordWrap(True)
        form.addRow("Safety", self.guard)

    def set_gpus(self, gpus: Sequence[GpuType], source: str) -> None:
        self._gpus = sorted(gpus, key=lambda g: (g.memory_gb, g.price(self._cloud) or 1e9))
        self.source.setText(source)
        self._fill()

    def _fill(self) -> None:
        current = self.current_id()
        self.combo.clear()
        for gpu in self._gpus:
            self.combo.addItem(gpu_line(gpu, self._cloud), gpu.id)
            index = self.combo.count() - 1
            unavailable = gpu.price(self._cloud) is None or (
                gpu.stock is not None and not gpu.in_stock
            )
            if unavailable:
                item = self.combo.model().item(index)  # type: ignore[attr-defined]
                item.setEnabled(False)
        if current is not None:
            self.select(current)

    def current_id(self) -> str | None:
        data = self.combo.currentData()
        return str(data) if data is not None else None

    def current(self) -> GpuType | None:
        return next((g for g in self._gpus if g.id == self.current_id()), None)

    def select(self, gpu_id: str) -> None:
        index = self.combo.findData(gpu_id)
        if index < 0:  # a type the list does not know (typed in a config file): keep it visible
            self.combo.addItem(f"{gpu_id} (not in the list)", gpu_id)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)

    def _picked(self, index: int) -> None:
        gpu_id = self.combo.itemData(index)
        if gpu_id is not None:
            self.gpu_chosen.emit(str(gpu_id))

    def update_from(
        self,
        gpu_type: str,
        cloud: str,
        gpu_count: int,
        max_runtime_minutes: float | None,
        budget_usd: float | None,
        grace_minutes: float,
    ) -> None:
        """Follow the form: the chosen type, its cloud, and the figures of the estimate."""
        wanted: Cloud = "COMMUNITY" if cloud == "community" else "SECURE"
        if wanted != self._cloud:
            self._cloud = wanted
            self._fill()
        if self.current_id() != gpu_type:
            self.select(gpu_type)
        self.estimate.setText(
            estimate_text(self.current(), self._cloud, gpu_count, max_runtime_minutes, budget_usd)
        )
        self.guard.setText(
            "Tunedeck terminates the pod after downloading the results, on failure, on cancel, "
            "at the budget and at max runtime. If Tunedeck is closed when the run ends, the pod "
            f"terminates itself after {grace_minutes:g} minutes: results not yet downloaded, "
            "pushed to the Hub or kept on a network volume are then lost."
        )
