"""The estimate panel of the New Run form: peak GPU memory by part, whether it fits the GPU the
run goes to, time and cost on it, and what would make it fit.

The plan is made off the GUI thread (reading a model's headers can mean a Hub request, counting a
dataset's tokens reads the file): edits restart a short timer, so a burst of typing makes one
plan, and an answer that arrives after a newer request is dropped. Typing never waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QGroupBox, QLabel, QMessageBox, QVBoxLayout, QWidget

from app.core.plan_gpus import offers_from_types
from app.core.runpod.models import GpuType
from app.ui.off_thread import OffThread
from trainer.config import RunConfig
from trainer.planner import (
    GIB,
    GpuOffer,
    ModelShapeError,
    ModelShapes,
    Plan,
    local_gpus,
    make_plan,
    read_model_shapes,
)
from trainer.planner.memory import PART_TITLES
from trainer.planner.table import format_hours, format_money

COALESCE_MS = 400  # one plan per burst of edits
Planner = Callable[[RunConfig, Sequence[GpuOffer], str | None], Plan]


class ShapeCache:
    """Model shapes by (name, revision), kept for the dialog's life: a Hub model is asked once,
    not at every keystroke. Failures are not kept (the user may fix the network or the id)."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._shapes: dict[tuple[str, str | None], ModelShapes] = {}
        self._base_dir = base_dir

    def get(self, cfg: RunConfig) -> ModelShapes:
        key = (cfg.model.name_or_path, cfg.model.revision)
        with self._lock:
            found = self._shapes.get(key)
        if found is None:
            found = read_model_shapes(key[0], revision=key[1], base_dir=self._base_dir)
            with self._lock:
                self._shapes[key] = found
        return found


def _gb(value: float) -> str:
    return f"{value / GIB:.1f} GB" if value >= 0.1 * GIB else f"{value / 2**20:.0f} MB"


def plan_summary(plan: Plan) -> str:
    """The panel's text (rich text): verdict, parts, time and cost, suggestions."""
    est = plan.estimate
    lines: list[str] = []
    if plan.target is None:
        lines.append(f"<b>Peak GPU memory about {_gb(est.peak_bytes)}</b> (no target GPU known)")
    else:
        gpu = plan.target.gpu
        verdict = "fits" if plan.target.fits else "<span style='color:#c0392b'>does NOT fit</span>"
        lines.append(
            f"<b>Peak about {_gb(est.peak_bytes)}</b> on {gpu.name} ({gpu.memory_gb:g} GB): "
            f"{verdict}"
        )
        if plan.target.hours is not None:
            cost = plan.target.cost
            lines.append(
                f"Time about {format_hours(plan.target.hours)}"
                + (f", about {format_money(cost)}" if cost else "")
            )
    parts = [
        f"{PART_TITLES[p.key].strip()}: {_gb(p.bytes)}"
        for p in est.parts
        if p.bytes and p.key != "trainable"
    ]
    lines.append(" · ".join(parts))
    if plan.suggestions:
        lines.append("To make it fit, in order:")
        lines += [
            f"&nbsp;&nbsp;{i}. {s.description} → {_gb(s.peak_bytes)}{' ✓' if s.fits else ''}"
            for i, s in enumerate(plan.suggestions, 1)
        ]
    fitting = sorted(
        (f for f in plan.gpus if f.fits and f.cost is not None and not f.gpu.local),
        key=lambda f: f.cost or 0.0,
    )[:3]
    if fitting:
        lines.append(
            "Cheapest RunPod GPUs that fit: "
            + ", ".join(f"{f.gpu.name} ({format_money(f.cost)})" for f in fitting)
        )
    lines += [f"<i>{note}</i>" for note in plan.notes]
    return "<br>".join(lines)


class PlanView(QGroupBox):
    """The live estimate. ``request(cfg, target_gpu)`` after each edit; ``plan`` is the latest
    answer (None until the first one, or after a config it could not plan)."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        base_dir: Path | None = None,
        planner: Planner | None = None,
        coalesce_ms: int = COALESCE_MS,
    ) -> None:
        super().__init__("Estimate", parent)
        self.setObjectName("planView")
        self.plan: Plan | None = None
        self.plans_made = 0
        self._gpus: list[GpuType] = []
        self._shapes = ShapeCache(base_dir)
        self._base_dir = base_dir
        self._local: list[GpuOffer] | None = None
        self._planner = planner or self._make_plan
        self._generation = 0
        self._pending: tuple[RunConfig, str | None] | None = None
        self._worker = OffThread(self, workers=1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(coalesce_ms)
        self._timer.timeout.connect(self._start)
        layout = QVBoxLayout(self)
        self.label = QLabel("Estimating…", self)
        self.label.setObjectName("planText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.label)

    # -- inputs -------------------------------------------------------------------------------

    def set_gpus(self, gpus: Sequence[GpuType]) -> None:
        self._gpus = list(gpus)

    def request(self, cfg: RunConfig, target_gpu: str | None) -> None:
        """Plan ``cfg`` for ``target_gpu`` (None: this computer's GPU) once edits pause."""
        self._generation += 1
        self._pending = (cfg, target_gpu)
        self._timer.start()

    def invalid(self) -> None:
        """The form holds a problem: no estimate until it is fixed."""
        self._generation += 1
        self._pending = None
        self._timer.stop()
        self.plan = None
        self.label.setText("The estimate waits for the fields marked in red.")

    def shutdown(self) -> None:
        self._timer.stop()
        self._worker.shutdown()

    # -- the work -----------------------------------------------------------------------------

    def _make_plan(self, cfg: RunConfig, gpus: Sequence[GpuOffer], target: str | None) -> Plan:
        if self._local is None:
            self._local = local_gpus()
        return make_plan(
            cfg,
            gpus,
            base_dir=self._base_dir,
            target=target,
            local=self._local,
            shapes=self._shapes.get(cfg),
        )

    def _start(self) -> None:
        if self._pending is None:
            return
        cfg, target = self._pending
        self._pending = None
        generation = self._generation
        offers = offers_from_types(self._gpus, cfg.runpod.cloud)
        self.label.setText(self.label.text() if self.plan else "Estimating…")
        self._worker.run(
            lambda: self._planner(cfg, offers, target),
            lambda future: self._done(generation, future),
        )

    def _done(self, generation: int, future: Future[Plan]) -> None:
        if generation != self._generation:
            return  # a newer edit asked for another plan
        try:
            plan = future.result()
        except ModelShapeError as err:
            self.plan = None
            self.label.setText(f"No estimate: {err}")
            return
        except Exception as err:  # a dataset it cannot count, a config it cannot plan
            self.plan = None
            self.label.setText(f"No estimate: {type(err).__name__}: {err}")
            return
        self.plan = plan
        self.plans_made += 1
        self.label.setText(plan_summary(plan))

    # -- Launch -------------------------------------------------------------------------------

    def confirm_launch(self, parent: QWidget) -> bool:
        """True to go ahead: the estimate fits, is unknown, or the user says launch anyway."""
        plan = self.plan
        if plan is None or plan.target is None or plan.target.fits:
            return True
        gpu = plan.target.gpu
        fix = plan.suggestions[0].description if plan.suggestions else "a larger GPU"
        answer = QMessageBox.question(
            parent,
            "The run may not fit",
            f"The estimate is {_gb(plan.estimate.peak_bytes)} of GPU memory; {gpu.name} has "
            f"{gpu.memory_gb:g} GB. The run will probably stop with an out-of-memory error.\n\n"
            f"First thing to try: {fix}.\n\nLaunch anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
