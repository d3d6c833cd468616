"""The launcher's parts that need no pod: the phase ledger and budget, the event feed (each line
once, the seq kept in the store), and which pods count as orphans."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.core.ingest import Ingestor
from app.core.launcher import LaunchError
from app.core.runpod.cost import PhaseLedger, budget_state, estimate_cost, format_meter
from app.core.runpod.models import Pod
from app.core.runpod.orphans import orphans_of, pod_name
from app.core.runpod.poller import EventFeed
from app.core.store import Store

# --------------------------------------------------------------------------------- the ledger


def test_phases_add_up_time_and_money_at_the_pods_rate() -> None:
    ledger = PhaseLedger("provisioning", 1000.0, cost_per_hour=3.6)  # $0.001 a second
    assert ledger.enter("installing", 1060.0)
    assert ledger.enter("training", 1090.0)
    assert not ledger.enter("installing", 1100.0)  # never backwards
    assert ledger.enter("terminated", 1390.0)
    spent = ledger.breakdown(5000.0)  # nothing accrues after termination
    assert spent["provisioning"] == pytest.approx({"seconds": 60.0, "dollars": 0.06})
    assert spent["installing"]["seconds"] == pytest.approx(30.0)
    assert spent["training"]["dollars"] == pytest.approx(0.3)
    assert ledger.dollars(9999.0) == pytest.approx(0.39)


def test_the_ledger_survives_a_restart_through_its_json() -> None:
    ledger = PhaseLedger("provisioning", 0.0, cost_per_hour=1.8)
    ledger.enter("training", 100.0)
    again = PhaseLedger.restore("training", 100.0, 1.8, ledger.phases_json())
    assert again.dollars(200.0) == pytest.approx(ledger.dollars(200.0))
    assert PhaseLedger.restore("training", None, None, "not json").dollars(5.0) == 0.0


def test_budget_warns_at_80_percent_and_stops_at_100() -> None:
    assert budget_state(7.9, 10.0) == "ok"
    assert budget_state(8.0, 10.0) == "warning"
    assert budget_state(10.0, 10.0) == "spent"
    assert budget_state(1e9, None) == "ok"


def test_the_meter_line_and_the_estimate() -> None:
    ledger = PhaseLedger("training", 0.0, cost_per_hour=0.69)
    line = format_meter(ledger, 3600.0, budget=10.0)
    assert line == "training · $0.69 of $10.00 · $0.69/h"
    assert estimate_cost(0.5, 2, 90) == pytest.approx(1.5)
    assert estimate_cost(0.5, 2, None) is None


# ------------------------------------------------------------------------------ the event feed


def _store_with_job(tmp_path: Any) -> tuple[Store, str]:
    store = Store(tmp_path / "store.sqlite")
    job = store.create_job(name="j", method="sft", model="m", target="runpod")
    store.save_cloud_run(job.id, phase="training")
    return store, job.id


def _lines(job_id: str, start: int, end: int) -> list[dict[str, Any]]:
    return [
        {"seq": n, "kind": "metric", "job_id": job_id, "data": {"step": n, "train_loss": 1.0 / n}}
        for n in range(start, end + 1)
    ]


def test_each_line_is_fed_once_and_the_seq_is_stored(tmp_path: Any) -> None:
    store, job_id = _store_with_job(tmp_path)
    ingestor = Ingestor(store)
    batches: list[int] = []
    ingestor.subscribe(lambda e: batches.append(len(e.points)) if e.kind == "metrics" else None)
    feed = EventFeed(store, ingestor, job_id)
    started = {"seq": 1, "kind": "alert", "job_id": job_id, "data": {"type": "job_started"}}
    page = [started, *_lines(job_id, 2, 5)]
    assert feed.feed(page).points == 4
    assert feed.feed(page).points == 0  # the same page again (a lost answer, a retry)
    assert batches == [4]
    assert store.get_cloud_run(job_id).last_seq == 5  # type: ignore[union-attr]
    assert store.require_job(job_id).status == "running"
    # a restarted app continues from the stored seq: old lines skipped, new ones fed
    again = EventFeed(store, ingestor, job_id, store.get_cloud_run(job_id).last_seq)  # type: ignore[union-attr]
    result = again.feed([*_lines(job_id, 3, 7)])
    assert result.points == 2 and result.last_seq == 7
    assert [p["step"] for p in store.metrics(job_id)] == [2, 3, 4, 5, 6, 7]
    store.close()


def test_lines_of_another_job_are_skipped_and_a_final_alert_is_reported(tmp_path: Any) -> None:
    store, job_id = _store_with_job(tmp_path)
    feed = EventFeed(store, Ingestor(store), job_id)
    done = {"type": "job_completed", "job_id": job_id, "status": "completed"}
    lines = [
        {"seq": 1, "kind": "metric", "job_id": "someone-else", "data": {"step": 1}},
        {"seq": 2, "kind": "metric", "data": {"step": 2, "train_loss": 0.5}},  # older trainer
        {"seq": 3, "kind": "alert", "job_id": job_id, "data": done},
    ]
    result = feed.feed(lines)
    assert [p["step"] for p in store.metrics(job_id)] == [2]
    assert result.final_alert is not None and result.final_alert["type"] == "job_completed"
    assert store.require_job(job_id).status == "completed"
    store.close()


def test_a_bad_point_does_not_block_the_good_ones(tmp_path: Any) -> None:
    store, job_id = _store_with_job(tmp_path)
    feed = EventFeed(store, Ingestor(store), job_id)
    lines = _lines(job_id, 1, 3)
    lines[1]["data"] = {"step": "not a number"}
    assert feed.feed(lines).points == 2
    assert [p["step"] for p in store.metrics(job_id)] == [1, 3]
    assert feed.last_seq == 3
    store.close()


# ------------------------------------------------------------------------------------- orphans


def _pod(pod_id: str, name: str, status: str = "RUNNING") -> Pod:
    return Pod.from_json(
        {"id": pod_id, "name": name, "status": status, "cost": 0.5, "gpu": {"id": "X"}}
    )


def test_orphans_are_live_pods_no_running_job_accounts_for(tmp_path: Any) -> None:
    store = Store(tmp_path / "store.sqlite")
    running = store.create_job(name="a", method="sft", model="m", target="runpod")
    store.set_status(running.id, "running")
    ended = store.create_job(name="b", method="sft", model="m", target="runpod")
    store.set_status(ended.id, "completed")
    for job, pod_id in ((running, "p-run"), (ended, "p-end")):
        store.record_resource(
            provider="runpod", status="created", resource_id=pod_id, job_id=job.id
        )
    pods = [
        _pod("p-run", pod_name(running.id)),
        _pod("p-end", pod_name(ended.id)),
        _pod("p-lost", pod_name("20260101-000000-abcdef")),  # a create that crashed the app
        _pod("p-mine", "my-jupyter"),
        _pod("p-gone", pod_name(ended.id), status="TERMINATED"),
    ]
    found = {o.pod.id: o for o in orphans_of(pods, store)}
    assert set(found) == {"p-end", "p-lost", "p-mine"}
    assert "completed" in found["p-end"].reason
    assert found["p-lost"].made_by_tunedeck and not found["p-mine"].made_by_tunedeck
    assert found["p-mine"].reason == "not made by this Tunedeck"
    store.close()


# ------------------------------------------------------------------------ what goes to the pod


def test_the_hub_token_travels_only_with_a_run_that_talks_to_the_hub(tmp_path: Any) -> None:
    from app.core.runpod.pod_setup import talks_to_hub
    from trainer.config import parse_config

    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "hi"}\n', encoding="utf-8")
    local = {"model": {"name_or_path": "builtin:tiny-llama"}, "dataset": {"path": str(data)}}
    assert not talks_to_hub(parse_config(local), tmp_path)
    url = {**local, "dataset": {"path": "https://example.org/rows.jsonl"}}
    assert not talks_to_hub(parse_config(url), tmp_path)
    hub_model = {**local, "model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}}
    assert talks_to_hub(parse_config(hub_model), tmp_path)
    hub_data = {**local, "dataset": {"path": "someone/private-rows"}}
    assert talks_to_hub(parse_config(hub_data), tmp_path)
    push = {**local, "output": {"push_to_hub": True, "hub_repo": "me/adapter"}}
    assert talks_to_hub(parse_config(push), tmp_path)


def test_the_pod_request_carries_the_agent_and_the_runs_caps_but_no_account_key() -> None:
    from app.core.runpod.pod_setup import AGENT_PORT, pod_request
    from trainer.config import parse_config

    cfg = parse_config(
        {
            "runpod": {
                "gpu_type": "NVIDIA A40",
                "gpu_count": 2,
                "cloud": "community",
                "volume_id": "vol_1",
                "grace_minutes": 5,
                "idle_cap_minutes": 7,
            }
        }
    )
    body = pod_request("20260101-000000-abcdef", cfg, "t" * 32).to_json()
    assert body["name"] == "tunedeck-20260101-000000-abcdef"
    assert body["gpu"] == {"id": "NVIDIA A40", "count": 2} and body["cloud"] == "COMMUNITY"
    assert body["ports"] == [f"{AGENT_PORT}/http"]
    assert body["mounts"]["network"][0]["volumeId"] == "vol_1"
    env = body["env"]
    assert env["TUNEDECK_AGENT_GRACE_S"] == "300" and env["TUNEDECK_AGENT_IDLE_CAP_S"] == "420"
    assert not any(k.startswith("RUNPOD_") for k in env)  # RunPod sets the pod's own key
    assert "TUNEDECK_AGENT_SRC" in env and "python3 -c" in body["args"]


# ------------------------------------------------------------------------ the run's watchdogs


def _watched_run(tmp_path: Any, **runpod: Any) -> tuple[Any, Store]:
    from app.core.runpod.run_state import CloudJobRun
    from trainer.config import parse_config

    store, job_id = _store_with_job(tmp_path)
    runtime = {"max_runtime_minutes": 1.0, "timeout_warning_minutes": 0.5}
    cfg = parse_config({"runtime": runtime, "runpod": runpod})
    ledger = PhaseLedger("training", time.time(), cost_per_hour=3600.0)  # a dollar a second
    run = CloudJobRun(job_id, cfg, ledger, EventFeed(store, Ingestor(store), job_id), "t" * 32)
    return run, store


def test_the_budget_warns_once_at_80_percent_then_asks_the_run_to_stop(tmp_path: Any) -> None:
    from app.core.runpod.watch import check_money

    run, store = _watched_run(tmp_path, budget_usd=10.0)
    ingestor = Ingestor(store)
    run.ledger.phase_started_at = time.time() - 8.5
    check_money(run, store, ingestor, within_s=60)
    check_money(run, store, ingestor, within_s=60)
    warnings = [a for a in store.alerts(run.job_id) if a["type"] == "budget_warning"]
    assert len(warnings) == 1 and "of the $10.00 budget" in warnings[0]["message"]
    assert run.stop_reason is None
    run.ledger.phase_started_at = time.time() - 10.5
    check_money(run, store, ingestor, within_s=60)
    assert run.stop_reason is not None and "budget of $10.00" in run.stop_reason
    store.close()


def test_past_max_runtime_and_its_backstop_the_run_is_asked_to_stop(tmp_path: Any) -> None:
    from app.core.runpod.run_state import RUNTIME_BACKSTOP_S
    from app.core.runpod.watch import limits_reached

    run, store = _watched_run(tmp_path)
    run.training_since = time.monotonic() - 60.0 - RUNTIME_BACKSTOP_S + 5
    assert not limits_reached(run, silence_s=1e9, within_s=60) and run.stop_reason is None
    run.training_since = time.monotonic() - 60.0 - RUNTIME_BACKSTOP_S - 5
    assert not limits_reached(run, silence_s=1e9, within_s=60)
    assert run.stop_reason == "the run passed its max runtime of 1 minutes"
    # the trainer confirms (its final alert) or the wait runs out
    run.stop_by = time.monotonic() - 1
    with pytest.raises(LaunchError, match="did not confirm its stop"):
        limits_reached(run, silence_s=1e9, within_s=60)
    run.final_alert = {"type": "job_cancelled"}
    assert limits_reached(run, silence_s=1e9, within_s=60)
    store.close()


def test_a_silent_trainer_ends_the_run(tmp_path: Any) -> None:
    from app.core.runpod.watch import limits_reached

    run, store = _watched_run(tmp_path)
    run.last_heard = time.monotonic() - 61
    with pytest.raises(LaunchError, match="reported nothing for 1 minutes"):
        limits_reached(run, silence_s=60, within_s=60)
    store.close()
