"""Alerts → notifications: wording, policy, redaction, and desktop-notifier over a real D-Bus."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from app.core.notifications import (
    AlertNotification,
    AlertNotifications,
    DesktopNotifierBackend,
    NotificationPolicy,
    Notifier,
    RecordingNotifier,
    format_alert,
    redact,
)
from app.core.settings import Settings
from trainer.events import ALERT_TYPES, Alert

HF_TOKEN = "hf_" + "abcdefghijklmnopqrstuvwxyz0123"


def test_job_completed_is_recorded_as_a_notification() -> None:
    recorder = RecordingNotifier()
    alerts = AlertNotifications(recorder, NotificationPolicy.from_settings(Settings()))
    alert = Alert(
        type="job_completed",
        job_id="job-7",
        model_name="SmolLM2-135M",
        current_step=120,
        total_steps=120,
        loss=0.41234,
        duration=3_723_000,
    )

    sent = asyncio.run(alerts.handle(alert))

    assert recorder.sent == [sent]
    assert sent == AlertNotification(
        alert_type="job_completed",
        job_id="job-7",
        title="Training finished: SmolLM2-135M",
        body="Finished at step 120 of 120 after 1 h 02 min, final loss 0.4123.",
        urgency="normal",
    )


def test_a_fractional_duration_is_shown_and_a_nonsense_one_left_out() -> None:
    cancelled = format_alert(
        Alert(type="job_cancelled", job_id="j1", duration=95_400.5), job_label="my run"
    )
    assert "after 1 min 35 s" in cancelled.body
    for odd in (-5, float("nan")):
        note = format_alert(Alert(type="job_cancelled", job_id="j1", duration=odd), job_label="r")
        assert "after" not in note.body


def test_every_alert_type_has_its_own_wording() -> None:
    titles = set()
    for alert_type in ALERT_TYPES:
        note = format_alert(Alert(type=alert_type, job_id="j1"), job_label="my run")
        assert note.title.endswith(": my run")
        assert "_" not in note.title
        assert note.body, alert_type
        titles.add(note.title)
    assert len(titles) == len(ALERT_TYPES)


def test_failure_says_what_went_wrong_and_is_urgent() -> None:
    note = format_alert(
        {
            "type": "gpu_oom",
            "job_id": "j2",
            "current_step": 3,
            "error_type": "OutOfMemoryError",
            "error_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
        }
    )
    assert note.urgency == "critical"
    assert note.title == "Out of GPU memory: j2"
    assert note.body.startswith("At step 3. OutOfMemoryError: CUDA out of memory.")
    assert "Lower the batch size" in note.body


def test_policy_follows_the_settings_switches() -> None:
    settings = Settings()
    settings.notify["job_started"] = False
    recorder = RecordingNotifier()
    alerts = AlertNotifications(recorder, NotificationPolicy.from_settings(settings))

    assert asyncio.run(alerts.handle(Alert(type="job_started", job_id="j"))) is None
    assert asyncio.run(alerts.handle(Alert(type="job_failed", job_id="j"))) is not None
    assert [n.alert_type for n in recorder.sent] == ["job_failed"]


def test_no_secret_reaches_a_notification() -> None:
    runpod_key = "ABCDEF0123456789GHIJ"  # an old-style key with no recognisable prefix
    recorder = RecordingNotifier()
    alerts = AlertNotifications(
        recorder,
        secrets=lambda: {runpod_key, HF_TOKEN},
        job_label=lambda job_id: f"run for {runpod_key}",
    )
    alert = Alert(
        type="job_failed",
        job_id="j3",
        error_type="HTTPError",
        error_message=f"401 with Authorization: Bearer {HF_TOKEN}; key={runpod_key}",
        message=f"push failed for token {HF_TOKEN}",
    )
    note = asyncio.run(alerts.handle(alert))
    assert note is not None
    shown = note.title + note.body
    assert HF_TOKEN not in shown
    assert runpod_key not in shown
    assert "•••" in note.body
    assert "HTTPError: 401" in note.body  # the useful part stays


def test_secret_shapes_are_redacted_without_being_known() -> None:
    text = "token=abcdefgh12345 Bearer eyJhbGciOi.payload hf_ABCDEFGHIJKLMNOPQRSTU"
    assert redact(text) == "token=••• Bearer ••• •••"
    assert redact("step 12 of 100, loss 0.5") == "step 12 of 100, loss 0.5"


def test_long_bodies_are_shortened() -> None:
    note = format_alert(Alert(type="job_failed", job_id="j", error_message="x " * 500))
    assert len(note.body) <= 300
    assert note.body.endswith("…")


class BrokenNotifier:
    name = "broken"

    async def send(self, note: AlertNotification) -> bool:
        raise RuntimeError("platform notification service exploded")


def test_a_failing_notifier_does_not_break_the_alert_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert isinstance(BrokenNotifier(), Notifier)
    note = asyncio.run(
        AlertNotifications(BrokenNotifier()).handle(Alert(type="stalled", job_id="j"))
    )
    assert note is not None
    assert "notifier broken failed" in caplog.text


# ---- desktop-notifier over D-Bus -----------------------------------------------------------


def test_without_dbus_desktop_notifier_does_nothing_and_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/tunedeck-bus")
    backend = DesktopNotifierBackend(timeout_s=2)
    note = format_alert(Alert(type="job_completed", job_id="j"))
    started = time.monotonic()
    assert asyncio.run(backend.send(note)) is False
    assert time.monotonic() - started < 2.5


def test_without_a_session_bus_desktop_notifier_is_skipped_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # what a desktop without a notification service got before: a traceback for every alert
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    backend = DesktopNotifierBackend(timeout_s=2)
    notes = [format_alert(Alert(type=t, job_id="j")) for t in ("job_started", "job_completed")]

    async def both() -> list[bool]:
        return [await backend.send(note) for note in notes]

    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(both()) == [False, False]
    assert "Traceback" not in caplog.text
    assert caplog.text.count("desktop notifications are off for this session") == 1
