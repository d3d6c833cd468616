"""What a cloud run has cost, phase by phase, and where it stands against its budget.

A pod bills from its creation to its termination at its ``cost_per_hour`` (RunPod reports the
rate on the pod). The run moves through ``PHASES``; each phase that is over keeps its seconds and
dollars, so the job view and ``tunedeck batch`` can show where time and money went. The ledger
is plain data (no I/O): the launcher saves it in the store's ``cloud_runs`` row after each
change, and a restarted app rebuilds it from that row.

A job resumed on a new pod keeps one ledger: what its earlier pods cost is folded into one
``EARLIER`` entry (``continued``), so the job's total stays whole while ``runpod.budget_usd``
applies to each pod (``pod_dollars``): a run stopped at its budget can go on, one budget more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

PHASES: tuple[str, ...] = ("provisioning", "installing", "training", "collecting", "terminated")
PHASE_TITLES: dict[str, str] = {
    "provisioning": "provisioning the pod",
    "installing": "installing the trainer",
    "training": "training",
    "collecting": "collecting artifacts",
    "terminated": "pod terminated",
}
BUDGET_WARNING_SHARE = 0.8
EARLIER = "earlier pods"  # a resumed job: time and money of its pods before this one

BudgetState = Literal["ok", "warning", "spent"]


@dataclass
class PhaseLedger:
    """Seconds and dollars per phase; the current phase runs from ``phase_started_at``."""

    phase: str = "provisioning"
    phase_started_at: float = 0.0
    cost_per_hour: float | None = None
    done: dict[str, dict[str, float]] = field(default_factory=dict)

    def enter(self, phase: str, now: float) -> bool:
        """Close the current phase and start ``phase``; False when it is the current one or an
        earlier one (phases only move forward; a terminated pod stays terminated)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        if PHASES.index(phase) <= PHASES.index(self.phase):
            return False
        self._close(now)
        self.phase, self.phase_started_at = phase, now
        return True

    def _close(self, now: float) -> None:
        seconds = max(0.0, now - self.phase_started_at)
        entry = self.done.setdefault(self.phase, {"seconds": 0.0, "dollars": 0.0})
        entry["seconds"] += seconds
        entry["dollars"] += self._dollars(seconds)

    def _dollars(self, seconds: float) -> float:
        return (self.cost_per_hour or 0.0) * seconds / 3600.0

    def breakdown(self, now: float) -> dict[str, dict[str, float]]:
        """{phase: {"seconds", "dollars"}} including the current phase so far (none accrues
        once the pod is terminated)."""
        out = {p: dict(v) for p, v in self.done.items()}
        if self.phase != "terminated":
            seconds = max(0.0, now - self.phase_started_at)
            entry = out.setdefault(self.phase, {"seconds": 0.0, "dollars": 0.0})
            entry["seconds"] += seconds
            entry["dollars"] += self._dollars(seconds)
        return out

    def dollars(self, now: float) -> float:
        return sum(v["dollars"] for v in self.breakdown(now).values())

    def seconds(self, now: float) -> float:
        return sum(v["seconds"] for v in self.breakdown(now).values())

    def earlier_dollars(self) -> float:
        return float(self.done.get(EARLIER, {}).get("dollars", 0.0))

    def pod_dollars(self, now: float) -> float:
        """What the current pod has cost (the budget's measure)."""
        return self.dollars(now) - self.earlier_dollars()

    def continued(self, now: float, ended_at: float | None = None) -> PhaseLedger:
        """The ledger of the job's next pod: everything spent so far (counted up to
        ``ended_at``, when the last pod ended) in one ``EARLIER`` entry."""
        until = ended_at if ended_at is not None else now
        seconds, dollars = self.seconds(until), self.dollars(until)
        done = {EARLIER: {"seconds": seconds, "dollars": dollars}} if seconds or dollars else {}
        return PhaseLedger("provisioning", now, None, done)

    def phases_json(self) -> str:
        return json.dumps(self.done, sort_keys=True)

    @classmethod
    def restore(
        cls, phase: str, started_at: float | None, cost_per_hour: float | None, phases: str
    ) -> PhaseLedger:
        try:
            done = json.loads(phases or "{}")
        except ValueError:
            done = {}
        return cls(phase, started_at or 0.0, cost_per_hour, done if isinstance(done, dict) else {})


def budget_state(spent: float, budget: float | None) -> BudgetState:
    if budget is None or budget <= 0:
        return "ok"
    if spent >= budget:
        return "spent"
    if spent >= BUDGET_WARNING_SHARE * budget:
        return "warning"
    return "ok"


def format_meter(ledger: PhaseLedger, now: float, budget: float | None = None) -> str:
    """One line for the job view and the CLI: ``training · $0.42 of $10.00 · $0.69/h``; a
    resumed job: ``training · $0.12 of $10.00 this pod · $0.54 in all · $0.69/h``."""
    earlier = ledger.earlier_dollars()
    parts = [PHASE_TITLES.get(ledger.phase, ledger.phase), f"${ledger.pod_dollars(now):.2f}"]
    if budget:
        parts[-1] += f" of ${budget:.2f}"
    if earlier:
        parts[-1] += " this pod"
        parts.append(f"${ledger.dollars(now):.2f} in all")
    if ledger.cost_per_hour is not None and ledger.phase != "terminated":
        parts.append(f"${ledger.cost_per_hour:.2f}/h")
    return " · ".join(parts)


def estimate_cost(price_per_gpu_hour: float, gpu_count: int, minutes: float | None) -> float | None:
    """The most a run can cost when it stops at ``minutes`` (None: no runtime limit)."""
    if minutes is None:
        return None
    return price_per_gpu_hour * gpu_count * minutes / 60.0
