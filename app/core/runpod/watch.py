"""What stops a cloud run besides its end: the budget (a warning at 80%, a stop at 100%, and
before training a pod that spends it just starting), the runtime cap (a backstop past the
trainer's own max_runtime) and the trainer's silence."""

from __future__ import annotations

import logging
import time

from app.core.ingest import Ingestor
from app.core.launcher import LaunchError
from app.core.runpod.cost import BUDGET_WARNING_SHARE, budget_state
from app.core.runpod.run_state import RUNTIME_BACKSTOP_S, CloudJobRun
from app.core.store import Store

log = logging.getLogger(__name__)


def check_money(run: CloudJobRun, store: Store, ingestor: Ingestor, within_s: float) -> None:
    """The budget_warning alert at 80% (once), a stop request at 100%."""
    budget = run.cfg.runpod.budget_usd
    spent = run.ledger.pod_dollars(time.time())  # per pod: a resume has its own
    state = budget_state(spent, budget)
    if state != "ok" and not run.warned_budget:
        run.warned_budget = True
        job = store.require_job(run.job_id)
        ingestor.ingest_alert(
            {
                "type": "budget_warning",
                "job_id": run.job_id,
                "user_id": job.user_id,
                "model_name": job.model,
                "message": f"${spent:.2f} of the ${budget:.2f} budget spent "
                f"({BUDGET_WARNING_SHARE:.0%} reached); the pod stops at the budget",
                "spent_usd": round(spent, 4),
                "budget_usd": budget,
            }
        )
    if state == "spent" and run.stop_reason is None:
        reason = f"the budget of ${budget:.2f} was reached (${spent:.2f} spent)"
        log.warning("job %s: stopping: %s", run.job_id, reason)
        run.stop(reason, within_s)


def refuse_spent_budget(run: CloudJobRun) -> None:
    """Before training: a pod that takes its budget to start is given up."""
    budget = run.cfg.runpod.budget_usd
    spent = run.ledger.pod_dollars(time.time())  # per pod: a resume has its own
    if budget_state(spent, budget) == "spent":
        raise LaunchError(
            f"the budget of ${budget:.2f} was spent (${spent:.2f}) before the trainer started",
            "The pod took long to start; try another GPU type or raise runpod.budget_usd.",
        )


def limits_reached(run: CloudJobRun, silence_s: float, within_s: float) -> bool:
    """True when the wait for a stopped trainer is over (it confirmed, or time is up)."""
    now = time.monotonic()
    if run.stop_reason is not None:
        if run.stop_by is None or now < run.stop_by:
            return False
        if run.final_alert is None:
            raise LaunchError(
                f"{run.stop_reason}; the trainer did not confirm its stop in time",
                "The pod was terminated; a checkpoint not downloaded is lost.",
            )
        return True  # it said so but is still finishing: collect what is there
    limit = run.cfg.runtime.max_runtime_minutes
    over = limit is not None and run.training_since is not None
    if over and now - run.training_since > limit * 60.0 + RUNTIME_BACKSTOP_S:  # type: ignore[operator]
        reason = f"the run passed its max runtime of {limit:g} minutes"
        log.warning("job %s: stopping: %s", run.job_id, reason)
        run.stop(reason, within_s)
    if now - run.last_heard > silence_s:
        raise LaunchError(
            f"the trainer has reported nothing for {silence_s / 60:.0f} minutes",
            "The pod was terminated. Its log (in the job's folder) may say why; raise "
            "runpod.silence_minutes if the run needs long silent stretches.",
        )
    return False
