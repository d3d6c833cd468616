"""Event log, sender lanes and reporter against a real receiver on 127.0.0.1 (no training)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from app.core.receiver import RECENT_JOB_S
from tests.trainer.live_receiver import LiveReceiver
from trainer.events import EVENT_LOG_NAME, METRICS_PATH
from trainer.reporting.event_log import EventLog, iter_events, last_seq
from trainer.reporting.http_target import HttpTarget, Response, endpoint_url
from trainer.reporting.reporter import Reporter
from trainer.reporting.sender import Backoff, Lane

FAST = Backoff(base=0.05, cap=0.2)


def make_reporter(tmp_path: Path, env: dict[str, str], **kw: object) -> Reporter:
    return Reporter.from_env(
        execution_id="exec-1", output_dir=tmp_path, environ=env, backoff=FAST, **kw
    )


# -------------------------------------------------------------------------------- event log


def test_event_log_numbers_lines_and_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    log = EventLog(path, "job-1")
    assert [log.append("metric", {"step": i}) for i in range(3)] == [1, 2, 3]
    log.close()
    log = EventLog(path, "job-1")  # a resumed run in the same output folder
    assert log.append("alert", {"type": "job_started"}) == 4
    log.close()
    events = list(iter_events(path))
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[3] == {
        "seq": 4,
        "kind": "alert",
        "job_id": "job-1",
        "data": {"type": "job_started"},
    }
    assert [e["seq"] for e in iter_events(path, after=2)] == [3, 4]


def test_event_log_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    path.write_text('{"seq":1,"kind":"metric","data":{"step":1}}\n{"seq":2,"kind":"met')
    log = EventLog(path, "job-1")
    assert log.append("metric", {"step": 2}) == 2
    log.close()
    assert [e["data"]["step"] for e in iter_events(path)] == [1, 2]


def test_event_log_finds_the_last_seq_past_a_large_tail(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    log = EventLog(path, "job-1")
    for i in range(3000):
        log.append("metric", {"step": i, "note": "x" * 40})
    log.close()
    assert last_seq(path) == 3000


def test_event_log_is_safe_from_many_threads(tmp_path: Path) -> None:
    log = EventLog(tmp_path / EVENT_LOG_NAME, "job-1")

    def write() -> None:
        for i in range(200):
            log.append("metric", {"step": i})

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = (tmp_path / EVENT_LOG_NAME).read_text().splitlines()
    assert sorted(json.loads(line)["seq"] for line in lines) == list(range(1, 801))


def test_every_line_names_its_job_and_a_reader_can_keep_one_jobs_lines(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    first = make_reporter(tmp_path, {"JOB_ID": "job-a"})
    first.metric({"step": 1})
    first.alert("job_started")
    first.close(1)
    second = make_reporter(tmp_path, {})  # no JOB_ID: the execution id names the job
    second.metric({"step": 1})
    second.close(1)
    events = list(iter_events(path))
    assert [(e["seq"], e["job_id"]) for e in events] == [(1, "job-a"), (2, "job-a"), (3, "exec-1")]
    assert all(set(e) == {"seq", "kind", "job_id", "data"} for e in events)
    assert [e["seq"] for e in iter_events(path, job_id="job-a")] == [1, 2]
    assert [e["seq"] for e in iter_events(path, after=1, job_id="exec-1")] == [3]


def test_two_jobs_in_one_folder_never_send_each_others_points(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    # Both logs start at seq 0, so their numbers collide: the sender's read-back of points it
    # dropped from a full queue must take its own job's lines only.
    mine = make_reporter(tmp_path, app_receiver.env(), max_queue=5, max_batch=5)
    other = make_reporter(tmp_path, {"JOB_ID": "someone-else"})
    for step in range(1, 31):
        mine.metric({"step": step, "train_loss": 1.0})
        other.metric({"step": step, "train_loss": 99.0})
    assert mine.metrics_lane is not None and mine.metrics_lane.stats.dropped_full >= 20
    app_receiver.start()
    assert mine.flush(10)
    mine.close(5)
    other.close(1)
    steps = Counter(p["step"] for p in app_receiver.points())
    assert set(steps) == set(range(1, 31)) and max(steps.values()) == 1
    assert {p["train_loss"] for p in app_receiver.stored_points()} == {1.0}


# -------------------------------------------------------------------------------- backoff


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Backoff(base=0.5, cap=8.0, rng=random.Random(1))
    for failures, full in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (30, 8.0)]:
        delays = {b.delay(failures) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered, so that many trainers do not retry in lockstep
    assert b.delay(1, retry_after=5.0) == 5.0  # Retry-After wins when longer
    assert b.delay(1, retry_after=100.0) == 8.0  # ...but never past the cap


def test_endpoint_url_accepts_a_full_url_or_an_origin() -> None:
    assert endpoint_url("http://h:1", METRICS_PATH) == "http://h:1" + METRICS_PATH
    assert endpoint_url("http://h:1/", METRICS_PATH) == "http://h:1" + METRICS_PATH
    assert endpoint_url("https://h/custom/path", METRICS_PATH) == "https://h/custom/path"


# ------------------------------------------------------------------------------- delivery


def test_receiver_down_then_up_gets_every_point_exactly_once(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    rep = make_reporter(tmp_path, app_receiver.env())
    for step in range(1, 101):
        rep.metric({"step": step, "train_loss": 1.0 / step})
    rep.alert("job_started", total_steps=200)
    time.sleep(0.8)  # failed attempts while nobody listens
    assert rep.metrics_lane is not None and rep.metrics_lane.stats.failures > 0
    app_receiver.start()
    for step in range(101, 201):
        rep.metric({"step": step, "train_loss": 1.0 / step})
    assert rep.flush(10)
    rep.close(5)
    steps = Counter(p["step"] for p in app_receiver.points())
    assert set(steps) == set(range(1, 201))
    assert max(steps.values()) == 1
    assert [a["type"] for a in app_receiver.alerts()] == ["job_started"]
    assert app_receiver.batches() < 20  # batched, not one request per point


def test_a_receiver_restarted_between_two_requests_costs_no_retry_and_no_event(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    # The app restarted while the trainer's kept-alive connections were idle: the final alert,
    # sent during close (where one failure means giving up), must still arrive.
    app_receiver.start()
    rep = make_reporter(tmp_path, app_receiver.env())
    rep.alert("job_started")
    rep.metric({"step": 1, "train_loss": 1.0})
    assert rep.flush(5)
    app_receiver.stop()
    app_receiver.start()
    rep.metric({"step": 2, "train_loss": 0.5})
    rep.alert("job_completed", loss=0.5)
    rep.close(5)
    assert [a["type"] for a in app_receiver.alerts()] == ["job_started", "job_completed"]
    assert [p["step"] for p in app_receiver.points()] == [1, 2]
    assert all(lane.stats.failures == 0 for lane in rep.lanes())


def test_wrong_token_is_logged_once_and_sending_stops(
    tmp_path: Path, app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app_receiver.start()
    env = app_receiver.env() | {"JOB_TOKEN": "wrong"}
    rep = make_reporter(tmp_path, env, max_batch=5)
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        for step in range(1, 51):
            rep.metric({"step": step, "train_loss": 1.0})
            time.sleep(0.002)
        rep.alert("job_completed", loss=1.0)
        rep.close(5)
    lines = [r.getMessage() for r in caplog.records if "metrics" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "rejected the credentials (HTTP 401)" in lines[0]
    assert "Check JOB_TOKEN" in lines[0]
    assert rep.metrics_lane is not None
    assert rep.metrics_lane.stats.requests <= 2  # it stopped trying after the answer
    assert app_receiver.alerts("job_completed")  # the alert key was right: alerts still arrive
    assert len(list(iter_events(tmp_path / EVENT_LOG_NAME))) == 51  # nothing lost locally


def test_submitting_never_waits_for_a_slow_receiver(tmp_path: Path) -> None:
    slow = LiveReceiver(tmp_path / "receiver", delay=0.5).start()
    try:
        rep = make_reporter(tmp_path, slow.env())
        began = time.perf_counter()
        for step in range(1, 501):
            rep.metric({"step": step, "train_loss": 0.5})
        elapsed = time.perf_counter() - began
        assert elapsed < 0.5, f"500 points took {elapsed:.2f}s to enqueue"
        assert rep.flush(15)
        rep.close(5)
        assert sorted(p["step"] for p in slow.points()) == list(range(1, 501))
    finally:
        slow.close()


def test_full_queue_drops_oldest_then_recovers_them_from_the_log(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    rep = make_reporter(tmp_path, app_receiver.env(), max_queue=10, max_batch=7)
    for step in range(1, 61):
        rep.metric({"step": step})
    assert rep.metrics_lane is not None
    assert rep.metrics_lane.stats.dropped_full >= 40
    app_receiver.start()
    assert rep.flush(10)
    rep.close(5)
    assert sorted(p["step"] for p in app_receiver.points()) == list(range(1, 61))
    assert rep.metrics_lane.stats.recovered == rep.metrics_lane.stats.dropped_full


def test_close_gives_up_quickly_when_the_receiver_is_down(
    tmp_path: Path, app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    rep = make_reporter(tmp_path, app_receiver.env())
    for step in range(1, 21):
        rep.metric({"step": step})
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        rep.close(10)
    assert time.monotonic() - began < 2.0
    assert any("not delivered before exit" in r.getMessage() for r in caplog.records)


def test_a_refused_point_is_isolated_and_the_rest_delivered(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    app_receiver.start()
    target = HttpTarget(
        app_receiver.url + METRICS_PATH, {"Authorization": f"Bearer {app_receiver.token}"}, 5.0
    )
    job_id = app_receiver.job.id
    lane = Lane("metrics", target, lambda ps: {"job_id": job_id, "metrics": ps}, backoff=FAST)
    for step in range(8):
        lane.submit(step + 1, {"step": -1 if step == 5 else step})  # step -1 fails validation
    assert lane.flush(10)
    lane.close(2)
    assert sorted(p["step"] for p in app_receiver.points()) == [0, 1, 2, 3, 4, 6, 7]
    assert lane.stats.rejected == 1


# ------------------------------------------------------------------- errors while sending


def metrics_lane(receiver: LiveReceiver, target: HttpTarget | None = None) -> Lane:
    target = target or HttpTarget(
        receiver.url + METRICS_PATH, {"Authorization": f"Bearer {receiver.token}"}, 5.0
    )
    job_id = receiver.job.id
    return Lane(
        "metrics", target, lambda ps: {"job_id": job_id, "metrics": ps}, backoff=FAST, max_batch=4
    )


def test_a_point_json_cannot_encode_is_dropped_and_later_points_still_arrive(
    app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app_receiver.start()
    lane = metrics_lane(app_receiver)
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        for step in range(1, 11):
            point: dict[str, object] = {"step": step, "train_loss": 0.5}
            if step == 5:
                point["extra"] = {"nested": [1.0, float("nan")]}  # not strict JSON
            if step == 7:
                point["extra"] = object()  # not JSON at all
            lane.submit(step, point)
        assert lane.flush(5)  # the lane thread is alive after both
        for step in range(11, 21):  # later in the run
            lane.submit(step, {"step": step, "train_loss": 0.25})
        assert lane.flush(5)
        lane.close(2)
    sent = sorted(p["step"] for p in app_receiver.points())
    assert sent == [s for s in range(1, 21) if s not in (5, 7)]
    assert lane.stats.unencodable == 2
    dropped = [r.getMessage() for r in caplog.records if "cannot be sent as JSON" in r.getMessage()]
    assert len(dropped) == 2
    assert "event 5 " in dropped[0] and "Out of range float" in dropped[0]
    assert "event 7 " in dropped[1] and "not JSON serializable" in dropped[1]


class BuggyTarget(HttpTarget):
    """A target with a bug that shows on its first request only."""

    calls = 0

    def post_body(self, body: bytes, timeout: float | None = None) -> Response:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("a bug in the target")
        return super().post_body(body, timeout)


def test_an_unexpected_error_costs_one_batch_and_the_lane_goes_on(
    app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app_receiver.start()
    target = BuggyTarget(
        app_receiver.url + METRICS_PATH, {"Authorization": f"Bearer {app_receiver.token}"}, 5.0
    )
    lane = metrics_lane(app_receiver, target)
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        for step in range(1, 5):
            lane.submit(step, {"step": step})
        assert lane.flush(5)
        for step in range(5, 9):
            lane.submit(step, {"step": step})
        assert lane.flush(5)
        lane.close(2)
    assert lane.stats.errors == 1
    assert sorted(p["step"] for p in app_receiver.points()) == [5, 6, 7, 8]
    [line] = [r for r in caplog.records if "sending failed unexpectedly" in r.getMessage()]
    assert "events 1-4 dropped from sending" in line.getMessage() and line.exc_info


def test_the_reporter_takes_points_json_cannot_hold_without_stopping_training(
    tmp_path: Path, app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app_receiver.start()
    rep = make_reporter(tmp_path, app_receiver.env())
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        rep.metric({"step": 1, "train_loss": 1.0})
        rep.metric({"step": 2, "train_loss": 1.0, "extra": {"a": float("inf")}})
        rep.metric({"step": 3, "train_loss": 1.0, "extra": object()})  # raised in the trainer
        rep.metric({"step": 4, "train_loss": 1.0})
        assert rep.flush(5)
        rep.close(5)
    events = list(iter_events(tmp_path / EVENT_LOG_NAME))
    assert [e["data"]["step"] for e in events] == [1, 2, 4]
    assert [e["seq"] for e in events] == [1, 2, 3]  # what was left out left no gap
    assert events[1]["data"]["extra"] == {"a": None}  # cleaned at depth, not dropped
    assert [p["step"] for p in app_receiver.points()] == [1, 2, 4]
    assert any("step 3" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ credentials and closed


def test_a_closed_job_is_logged_as_closed_not_as_wrong_credentials(
    tmp_path: Path, app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    store, job_id = app_receiver.store, app_receiver.job.id
    store.set_status(job_id, "running")
    store.set_status(job_id, "completed")
    store.update_job(job_id, ended_at=time.time() - 2 * RECENT_JOB_S)  # ended long ago
    app_receiver.start()
    rep = make_reporter(tmp_path, app_receiver.env(), max_batch=5)
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        for step in range(1, 21):
            rep.metric({"step": step, "train_loss": 1.0})
            time.sleep(0.002)
        rep.close(5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics:")]
    assert len(lines) == 1, lines
    assert f"the receiver says job {job_id} is closed; it takes no more metrics" in lines[0]
    assert "HTTP 410" in lines[0] and "credentials" not in lines[0]
    assert rep.metrics_lane is not None
    assert rep.metrics_lane.stats.requests == 1  # final: neither retried nor sent again
    assert app_receiver.stored_points() == []


def test_alerts_carry_the_job_token_so_a_lost_api_key_does_not_lose_them(
    tmp_path: Path, app_receiver: LiveReceiver
) -> None:
    # A run reattached after the app restarted without a keyring: its INTERNAL_API_KEY was the
    # old session's, but its own token still proves whose alerts these are.
    app_receiver.start()
    env = app_receiver.env() | {"INTERNAL_API_KEY": "the-key-of-a-past-session"}
    rep = make_reporter(tmp_path, env)
    rep.alert("job_started", total_steps=3)
    rep.alert("job_completed", loss=0.5)
    assert rep.flush(5)
    rep.close(5)
    assert [a["type"] for a in app_receiver.alerts()] == ["job_started", "job_completed"]
    assert app_receiver.store.require_job(app_receiver.job.id).status == "completed"


def test_alerts_with_neither_credential_right_log_the_credentials(
    tmp_path: Path, app_receiver: LiveReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app_receiver.start()
    env = app_receiver.env() | {"INTERNAL_API_KEY": "wrong", "JOB_TOKEN": "wrong-too"}
    rep = make_reporter(tmp_path, env)
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        rep.alert("job_started")
        rep.close(5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alerts:")]
    assert len(lines) == 1 and "rejected the credentials (HTTP 401)" in lines[0]
    assert "INTERNAL_API_KEY" in lines[0] and "JOB_TOKEN" in lines[0]
    assert app_receiver.alerts() == []


# -------------------------------------------------------------------------------- reporter


def test_without_a_metrics_url_events_go_to_the_log_only(tmp_path: Path) -> None:
    rep = make_reporter(tmp_path, {"JOB_ID": "j"})
    rep.metric({"step": 1, "train_loss": float("nan")})
    rep.alert("job_started", total_steps=3)
    rep.close(1)
    assert rep.lanes() == []
    events = list(iter_events(tmp_path / EVENT_LOG_NAME))
    assert [e["kind"] for e in events] == ["metric", "alert"]
    assert "train_loss" not in events[0]["data"]  # NaN is not JSON: dropped, not sent as NaN
    assert events[1]["data"]["job_id"] == "j" and events[1]["data"]["total_steps"] == 3


def test_ranks_other_than_zero_report_nothing(tmp_path: Path, app_receiver: LiveReceiver) -> None:
    app_receiver.start()
    rep = make_reporter(tmp_path, app_receiver.env() | {"RANK": "1"})
    rep.metric({"step": 1})
    rep.alert("job_started")
    rep.close(1)
    assert not rep.active
    assert not (tmp_path / EVENT_LOG_NAME).exists()
    assert app_receiver.points() == [] and app_receiver.alerts() == []


def test_an_unusable_receiver_address_is_logged_and_the_run_reports_locally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="trainer.reporting"):
        rep = make_reporter(tmp_path, {"METRICS_API_URL": "localhost:8765/api/metrics"})
    rep.alert("job_started")
    rep.close(1)
    assert rep.lanes() == []
    assert len(caplog.records) == 1 and "unusable" in caplog.records[0].getMessage()
    assert [e["data"]["type"] for e in iter_events(tmp_path / EVENT_LOG_NAME)] == ["job_started"]
