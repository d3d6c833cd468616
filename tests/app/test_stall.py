"""Stall detection: raised once per silence, again after news then silence, off at zero."""

from __future__ import annotations

import asyncio

from app.core.notifications import AlertNotifications, RecordingNotifier
from app.core.stall import StallDetector, silence_since, stalled_alert


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_silent_job_is_reported_once_per_silence() -> None:
    clock = FakeClock()
    detector = StallDetector.from_minutes(10, clock=clock)
    last_seen = {"quiet": clock.now, "busy": clock.now}

    clock.now += 9 * 60
    last_seen["busy"] = clock.now
    assert detector.due(last_seen) == []

    clock.now += 61  # quiet: 10 min 1 s without news; busy: 61 s
    assert detector.due(last_seen) == ["quiet"]
    clock.now += 30 * 60
    assert detector.due(last_seen) == ["busy"]  # quiet already reported for this silence

    # quiet speaks again, then goes silent again: a second report
    last_seen["quiet"] = clock.now
    assert detector.due(last_seen) == []
    clock.now += 10 * 60
    assert detector.due(last_seen) == ["quiet"]


def test_a_job_that_stops_running_is_forgotten() -> None:
    clock = FakeClock()
    detector = StallDetector(60, clock=clock)
    seen_at = clock.now
    clock.now += 120
    assert detector.due({"a": seen_at}) == ["a"]
    assert detector.due({}) == []  # finished
    # the same id running again (a resumed run) with the same stale time is reported again
    assert detector.due({"a": seen_at}) == ["a"]


def test_oldest_silence_first_and_zero_turns_it_off() -> None:
    detector = StallDetector(60)
    assert detector.due({"newer": 500.0, "older": 100.0}, now=1000.0) == ["older", "newer"]
    off = StallDetector.from_minutes(0)
    assert off.due({"a": 0.0}, now=10_000.0) == []


def test_stalled_alert_reaches_the_notifier_with_its_silence() -> None:
    detector = StallDetector.from_minutes(10)
    now = 50_000.0
    last_seen = {"job-4": now - 15 * 60}
    recorder = RecordingNotifier()
    alerts = AlertNotifications(recorder)

    for job_id in detector.due(last_seen, now=now):
        alert = stalled_alert(job_id, detector.silent_for(job_id, last_seen[job_id], now))
        asyncio.run(alerts.handle(alert))

    assert len(recorder.sent) == 1
    note = recorder.sent[0]
    assert note.alert_type == "stalled"
    assert note.title == "No news from a run: job-4"
    assert note.body.startswith("Nothing received for 15 minutes.")


def test_silence_counts_from_the_latest_of_news_start_and_following() -> None:
    started, app_start = 1_000.0, 5_000.0
    # reattached after a restart, nothing heard yet: the silence began when the app did
    assert silence_since(None, started, app_start) == app_start
    # heard from since: that is the latest news
    assert silence_since(6_000.0, started, app_start) == 6_000.0
    # a run launched by this instance, still quiet: from its start
    assert silence_since(None, 7_000.0, app_start) == 7_000.0
