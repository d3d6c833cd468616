"""Event log, sender lanes and reporter against a real receiver on 127.0.0.1 (no training)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.reporting_receiver import ReportingReceiver
from trainer.events import EVENT_LOG_NAME, METRICS_PATH
from trainer.reporting.event_log import EventLog, iter_events, last_seq
from trainer.reporting.http_target import HttpTarget, endpoint_url
from trainer.reporting.reporter import Reporter
from trainer.reporting.sender import Backoff, Lane

FAST = Backoff(base=0.05, cap=0.2)


@pytest.fixture
def receiver() -> Iterator[ReportingReceiver]:
    r = ReportingReceiver()
    yield r
    r.close()


def make_reporter(tmp_path: Path, env: dict[str, str], **kw: object) -> Reporter:
    return Reporter.from_env(
        execution_id="exec-1", output_dir=tmp_path, environ=env, backoff=FAST, **kw
    )


# -------------------------------------------------------------------------------- event log


def test_event_log_numbers_lines_and_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    log = EventLog(path)
    assert [log.append("metric", {"step": i}) for i in range(3)] == [1, 2, 3]
    log.close()
    log = EventLog(path)  # a resumed run in the same output folder
    assert log.append("alert", {"type": "job_started"}) == 4
    log.close()
    events = list(iter_events(path))
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[3] == {"seq": 4, "kind": "alert", "data": {"type": "job_started"}}
    assert [e["seq"] for e in iter_events(path, after=2)] == [3, 4]


def test_event_log_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    path.write_text('{"seq":1,"kind":"metric","data":{"step":1}}\n{"seq":2,"kind":"met')
    log = EventLog(path)
    assert log.append("metric", {"step": 2}) == 2
    log.close()
    assert [e["data"]["step"] for e in iter_events(path)] == [1, 2]


def test_event_log_finds_the_last_seq_past_a_large_tail(tmp_path: Path) -> None:
    path = tmp_path / EVENT_LOG_NAME
    log = EventLog(path)
    for i in range(3000):
        log.append("metric", {"step": i, "note": "x" * 40})
    log.close()
    assert last_seq(path) == 3000


def test_event_log_is_safe_from_many_threads(tmp_path: Path) -> None:
    log = EventLog(tmp_path / EVENT_LOG_NAME)

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
    tmp_path: Path, receiver: ReportingReceiver
) -> None:
    rep = make_reporter(tmp_path, receiver.env())
    for step in range(1, 101):
        rep.metric({"step": step, "train_loss": 1.0 / step})
    rep.alert("job_started", total_steps=200)
    time.sleep(0.8)  # failed attempts while nobody listens
    assert rep.metrics_lane is not None and rep.metrics_lane.stats.failures > 0
    receiver.start()
    for step in range(101, 201):
        rep.metric({"step": step, "train_loss": 1.0 / step})
    assert rep.flush(10)
    rep.close(5)
    steps = Counter(p["step"] for p in receiver.points())
    assert set(steps) == set(range(1, 201))
    assert max(steps.values()) == 1
    assert [a["type"] for a in receiver.alerts()] == ["job_started"]
    assert len(receiver.accepted(METRICS_PATH)) < 20  # batched, not one request per point


def test_wrong_token_is_logged_once_and_sending_stops(
    tmp_path: Path, receiver: ReportingReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.start()
    env = receiver.env() | {"JOB_TOKEN": "wrong"}
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
    rejected = [r for r in receiver.requests if r.status == 401]
    assert len(rejected) <= 2  # it stopped trying after the answer
    assert receiver.alerts("job_completed")  # the alert key was right: alerts still arrive
    assert len(list(iter_events(tmp_path / EVENT_LOG_NAME))) == 51  # nothing lost locally


def test_submitting_never_waits_for_a_slow_receiver(tmp_path: Path) -> None:
    slow = ReportingReceiver(delay=0.5).start()
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
    tmp_path: Path, receiver: ReportingReceiver
) -> None:
    rep = make_reporter(tmp_path, receiver.env(), max_queue=10, max_batch=7)
    for step in range(1, 61):
        rep.metric({"step": step})
    assert rep.metrics_lane is not None
    assert rep.metrics_lane.stats.dropped_full >= 40
    receiver.start()
    assert rep.flush(10)
    rep.close(5)
    assert sorted(p["step"] for p in receiver.points()) == list(range(1, 61))
    assert rep.metrics_lane.stats.recovered == rep.metrics_lane.stats.dropped_full


def test_close_gives_up_quickly_when_the_receiver_is_down(
    tmp_path: Path, receiver: ReportingReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    rep = make_reporter(tmp_path, receiver.env())
    for step in range(1, 21):
        rep.metric({"step": step})
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trainer.reporting"):
        rep.close(10)
    assert time.monotonic() - began < 2.0
    assert any("not delivered before exit" in r.getMessage() for r in caplog.records)


def test_a_refused_point_is_isolated_and_the_rest_delivered(
    tmp_path: Path, receiver: ReportingReceiver
) -> None:
    receiver.start()
    target = HttpTarget(
        receiver.url + METRICS_PATH, {"Authorization": f"Bearer {receiver.token}"}, 5.0
    )
    lane = Lane("metrics", target, lambda ps: {"job_id": "j", "metrics": ps}, backoff=FAST)
    for step in range(8):
        lane.submit(step + 1, {"step": -1 if step == 5 else step})  # step -1 fails validation
    assert lane.flush(10)
    lane.close(2)
    assert sorted(p["step"] for p in receiver.points()) == [0, 1, 2, 3, 4, 6, 7]
    assert lane.stats.rejected == 1


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


def test_ranks_other_than_zero_report_nothing(tmp_path: Path, receiver: ReportingReceiver) -> None:
    receiver.start()
    rep = make_reporter(tmp_path, receiver.env() | {"RANK": "1"})
    rep.metric({"step": 1})
    rep.alert("job_started")
    rep.close(1)
    assert not rep.active
    assert not (tmp_path / EVENT_LOG_NAME).exists()
    assert receiver.requests == []


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
