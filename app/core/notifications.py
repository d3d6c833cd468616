"""Alerts become desktop notifications (DESIGN.md §5, Notifications).

The job's alert list in the store is the record of every alert; a notification is a courtesy on
top of it, sent only for the types the user left on in Settings, and never carrying a secret.
Nothing here writes SQLite: the ingest function stores the alert, then hands it to
``AlertNotifications.handle``.

Back ends share the small ``Notifier`` protocol: ``DesktopNotifierBackend`` (desktop-notifier:
D-Bus on Linux, WinRT on Windows), the system tray in ``app.ui.tray``, and ``RecordingNotifier``
for tests and for machines where nothing else exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from trainer.events import ALERT_TYPES, Alert

log = logging.getLogger(__name__)

Urgency = Literal["low", "normal", "critical"]
MAX_BODY_CHARS = 300
REDACTED = "•••"

# Shapes of secrets that may turn up inside an error message a trainer sends (an HTTP library
# echoing a header, a Hub error quoting a token). Known values are hidden as well, by value.
_SECRET_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),
    re.compile(r"\brpa_[A-Za-z0-9]{16,}"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)\b((?:api[_-]?key|token|password|secret)\s*[=:]\s*)[^\s,;]{8,}"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with known secret values and secret-shaped strings replaced by •••."""
    for value in sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


@dataclass(frozen=True)
class AlertNotification:
    """What a notification shows, plus which job and alert it came from (for a click)."""

    alert_type: str
    job_id: str
    title: str
    body: str
    urgency: Urgency = "normal"


@runtime_checkable
class Notifier(Protocol):
    """Shows a notification somewhere. ``send`` never raises; True when it was handed over."""

    name: str

    async def send(self, note: AlertNotification) -> bool: ...


@dataclass
class NotificationPolicy:
    """Which alert types notify: the Settings' per-type switches (unknown types notify)."""

    enabled: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(ALERT_TYPES, True))

    @classmethod
    def from_settings(cls, settings: Any) -> NotificationPolicy:
        """From ``app.core.settings.Settings`` (anything with a ``notify`` mapping)."""
        return cls(dict(settings.notify))

    def should_notify(self, alert_type: str) -> bool:
        return bool(self.enabled.get(alert_type, True))


# ---- wording -------------------------------------------------------------------------------

_TITLES: dict[str, tuple[str, Urgency]] = {
    "job_started": ("Training started", "low"),
    "job_completed": ("Training finished", "normal"),
    "job_failed": ("Training failed", "critical"),
    "job_cancelled": ("Training cancelled", "normal"),
    "gpu_oom": ("Out of GPU memory", "critical"),
    "timeout_warning": ("Run time limit is near", "normal"),
    "loss_nan": ("Loss is not a number", "critical"),
    "loss_spike": ("Loss jumped", "normal"),
    "stalled": ("No news from a run", "normal"),
    "budget_warning": ("Budget nearly spent", "normal"),
}


def alert_title(alert_type: str) -> str:
    """The short name of an alert type, as notifications and the Settings dialog show it."""
    known = _TITLES.get(alert_type)
    return known[0] if known else alert_type.replace("_", " ").capitalize()


_ADVICE: dict[str, str] = {
    "job_failed": "Open the job in Tunedeck for the full log.",
    "gpu_oom": "Lower the batch size or maximum length, or turn on gradient checkpointing or "
    "QLoRA, then launch again.",
    "timeout_warning": "The run will save a checkpoint and stop at its time limit.",
    "loss_nan": "Lower the learning rate or check the dataset for broken rows.",
    "loss_spike": "It may recover; if not, lower the learning rate.",
    "stalled": "The trainer may be stuck, or its connection lost.",
    "budget_warning": "The run stops when the budget is spent.",
}


def format_alert(
    alert: Alert | Mapping[str, Any],
    *,
    job_label: str | None = None,
    secrets: Iterable[str] = (),
) -> AlertNotification:
    """Title and body a user understands at a glance; secrets are redacted from every part."""
    data = alert.model_dump() if isinstance(alert, Alert) else dict(alert)
    alert_type = str(data.get("type", "alert"))
    job_id = str(data.get("job_id", ""))
    heading, urgency = _TITLES.get(
        alert_type, (alert_type.replace("_", " ").capitalize(), "normal")
    )
    label = job_label or data.get("model_name") or job_id or "a run"
    parts = [p for p in _facts(alert_type, data) if p]
    message = data.get("message")
    if isinstance(message, str) and message.strip():
        parts.append(message.strip())
    advice = _ADVICE.get(alert_type)
    if advice:
        parts.append(advice)
    body = " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts)
    keep = list(secrets)
    return AlertNotification(
        alert_type=alert_type,
        job_id=job_id,
        title=redact(f"{heading}: {label}", keep),
        body=_shorten(redact(body, keep)),
        urgency=urgency,
    )


def _facts(alert_type: str, data: Mapping[str, Any]) -> list[str]:
    """One or two sentences of what the alert says, from the fields it carries."""
    step, total = data.get("current_step"), data.get("total_steps")
    at_step = ""
    if isinstance(step, int):
        at_step = f"step {step:,}" + (f" of {total:,}" if isinstance(total, int) else "")
    loss = data.get("loss")
    loss_text = f"loss {loss:.4g}" if isinstance(loss, int | float) else ""
    duration = data.get("duration")
    # milliseconds; a contract trainer may send a fraction of one
    took = ""
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        took = _duration(int(duration)) if 0 <= duration < float("inf") else ""
    error = ": ".join(str(data[k]).strip() for k in ("error_type", "error_message") if data.get(k))

    if alert_type == "job_started":
        planned = f"{total:,} steps planned; " if isinstance(total, int) else ""
        return [planned + "live charts are in Tunedeck"]
    if alert_type == "job_completed":
        done = f"Finished at {at_step}" if at_step else "Finished"
        return [
            done
            + (f" after {took}" if took else "")
            + (f", final {loss_text}" if loss_text else "")
        ]
    if alert_type == "job_cancelled":
        stopped = f"Stopped at {at_step}" if at_step else "Stopped"
        return [stopped + (f" after {took}" if took else "")]
    if alert_type in ("job_failed", "gpu_oom"):
        fallback = "No error message was sent" if alert_type == "job_failed" else ""
        return [f"At {at_step}" if at_step else "", error or fallback]
    if alert_type in ("loss_nan", "loss_spike"):
        return [", ".join(x for x in (f"At {at_step}" if at_step else "", loss_text) if x)]
    if alert_type == "timeout_warning":
        return [f"At {at_step}" if at_step else ""]
    return [error]


def _duration(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_BODY_CHARS else text[: MAX_BODY_CHARS - 1].rstrip() + "…"


# ---- dispatch ------------------------------------------------------------------------------


class AlertNotifications:
    """Turns stored alerts into notifications, as the policy allows.

    ``secrets`` is called for each alert so that a secret entered mid-session is hidden too
    (pass ``CredentialStore.known_values``); ``job_label`` gives a job's display name.
    """

    def __init__(
        self,
        notifier: Notifier,
        policy: NotificationPolicy | None = None,
        *,
        secrets: Callable[[], Iterable[str]] = frozenset,
        job_label: Callable[[str], str | None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.policy = policy or NotificationPolicy()
        self._secrets = secrets
        self._job_label = job_label

    async def handle(self, alert: Alert | Mapping[str, Any]) -> AlertNotification | None:
        """Notify about one alert; returns what was sent, or None when the type is off."""
        alert_type = alert.type if isinstance(alert, Alert) else str(alert.get("type", ""))
        if not self.policy.should_notify(alert_type):
            return None
        job_id = alert.job_id if isinstance(alert, Alert) else str(alert.get("job_id", ""))
        label = self._job_label(job_id) if self._job_label else None
        note = format_alert(alert, job_label=label, secrets=self._secrets())
        try:
            delivered = await self.notifier.send(note)
        except Exception:  # a notifier must not break ingest; the alert list has the record
            log.exception("notifier %s failed", getattr(self.notifier, "name", self.notifier))
            delivered = False
        if not delivered:
            log.info("alert %s for job %s was not shown as a notification", alert_type, job_id)
        return note


# ---- back ends -----------------------------------------------------------------------------


class RecordingNotifier:
    """Keeps what it was asked to show: for tests, and as a stand-in where nothing else exists."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[AlertNotification] = []

    async def send(self, note: AlertNotification) -> bool:
        self.sent.append(note)
        return True


class DesktopNotifierBackend:
    """desktop-notifier: native notifications. Without a notification service it does nothing.

    desktop-notifier already swallows and logs platform errors; this adds a time limit (a broken
    session bus must not hold up the alert path) and reports whether the message was handed over.
    """

    name = "desktop-notifier"

    def __init__(self, app_name: str = "Tunedeck", *, timeout_s: float = 5.0) -> None:
        self._app_name = app_name
        self._timeout_s = timeout_s
        self._notifier: Any = None
        # Set after the first failure: desktop-notifier logs a whole traceback per failed
        # message, and a missing notification service does not come back within a session.
        self._unavailable = False

    async def send(self, note: AlertNotification) -> bool:
        if self._unavailable:
            return False
        if sys.platform.startswith("linux") and not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            self._give_up("no D-Bus session")
            return False
        try:
            from desktop_notifier import DesktopNotifier, Urgency

            if self._notifier is None:
                self._notifier = DesktopNotifier(app_name=self._app_name)
            dispatched = asyncio.Event()
            urgency = {
                "low": Urgency.Low,
                "normal": Urgency.Normal,
                "critical": Urgency.Critical,
            }[note.urgency]
            await asyncio.wait_for(
                self._notifier.send(
                    title=note.title,
                    message=note.body,
                    urgency=urgency,
                    on_dispatched=dispatched.set,
                ),
                self._timeout_s,
            )
            if not dispatched.is_set():
                self._give_up("the notification service did not take the message")
            return dispatched.is_set()
        except Exception as exc:  # TimeoutError included: never raise into the alert path
            self._give_up(type(exc).__name__)
            return False

    def close(self) -> None:
        """Drop the session-bus connection. Its socket is watched by the event loop that opened
        it; a loop closed with the watch still in place (qasync's is a QSocketNotifier) fires on
        whatever file later gets that descriptor number, which crashed a later Qt event pass."""
        backend = getattr(self._notifier, "_backend", None)  # desktop-notifier offers no close
        bus = getattr(backend, "bus", None)
        self._notifier = None
        if bus is not None:
            try:
                bus.disconnect()
            except Exception:
                log.debug("closing the notification bus failed", exc_info=True)

    def _give_up(self, reason: str) -> None:
        self._unavailable = True
        log.warning(
            "desktop notifications are off for this session (%s); alerts stay in each job's "
            "alert list",
            reason,
        )
