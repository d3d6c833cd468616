"""desktop-notifier against a real D-Bus session bus with a fake notification server on it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Annotated, Any

import pytest

pytest.importorskip("dbus_fast", reason="desktop-notifier uses D-Bus on Linux only")

from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

from app.core.notifications import AlertNotifications, DesktopNotifierBackend
from trainer.events import Alert


@pytest.fixture
def session_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private D-Bus session bus (no notification service on it until a test adds one)."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dbus-daemon missing in CI: run scripts/ensure-system-deps.sh")
        pytest.skip("dbus-daemon is not installed (scripts/ensure-system-deps.sh installs it)")
    process = subprocess.Popen(
        [daemon, "--session", "--nofork", "--print-address=1", "--nopidfile"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    address = process.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    yield address
    process.terminate()
    process.wait(5)


class FakeNotificationServer(ServiceInterface):
    """The parts of org.freedesktop.Notifications that desktop-notifier calls."""

    def __init__(self) -> None:
        super().__init__("org.freedesktop.Notifications")
        self.shown: list[dict[str, Any]] = []

    @dbus_method()
    def Notify(
        self,
        app_name: Annotated[str, DBusSignature("s")],
        replaces_id: Annotated[int, DBusSignature("u")],
        app_icon: Annotated[str, DBusSignature("s")],
        summary: Annotated[str, DBusSignature("s")],
        body: Annotated[str, DBusSignature("s")],
        actions: Annotated[list[str], DBusSignature("as")],
        hints: Annotated[dict[str, Any], DBusSignature("a{sv}")],
        expire_timeout: Annotated[int, DBusSignature("i")],
    ) -> Annotated[int, DBusSignature("u")]:
        urgency = hints.get("urgency")
        self.shown.append(
            {
                "app": app_name,
                "summary": summary,
                "body": body,
                "urgency": urgency.value if urgency is not None else None,
            }
        )
        return len(self.shown)

    @dbus_method()
    def GetCapabilities(self) -> Annotated[list[str], DBusSignature("as")]:
        return ["body", "actions"]

    @dbus_method()
    def GetServerInformation(
        self,
    ) -> Annotated[list[str], DBusSignature("ssss")]:
        return ["fake", "tunedeck-tests", "1.0", "1.2"]

    @dbus_signal()
    def NotificationClosed(self) -> Annotated[list[int], DBusSignature("uu")]:
        return [0, 0]

    @dbus_signal()
    def ActionInvoked(self) -> Annotated[list[Any], DBusSignature("us")]:
        return [0, ""]


async def _show_job_completed() -> tuple[bool, list[dict[str, Any]]]:
    """Serve a fake notification daemon on the bus, then send one alert through desktop-notifier."""
    server_bus = await MessageBus().connect()
    server = FakeNotificationServer()
    server_bus.export("/org/freedesktop/Notifications", server)
    await server_bus.request_name("org.freedesktop.Notifications")
    try:
        notifier = DesktopNotifierBackend(timeout_s=5)
        alerts = AlertNotifications(notifier)
        note = await alerts.handle(
            Alert(type="job_completed", job_id="job-9", model_name="tiny", current_step=4)
        )
        assert note is not None
        delivered = await notifier.send(note)  # a second one on the same connection
        notifier.close()
        return delivered, server.shown
    finally:
        server_bus.disconnect()


EXPECTED = {
    "app": "Tunedeck",
    "summary": "Training finished: tiny",
    "body": "Finished at step 4.",
    "urgency": 1,  # normal
}


def test_desktop_notifier_shows_job_completed_on_the_session_bus(session_bus: str) -> None:
    delivered, shown = asyncio.run(_show_job_completed())
    assert delivered is True
    assert shown == [EXPECTED, EXPECTED]


@pytest.mark.gui
def test_desktop_notifier_works_on_the_apps_qasync_loop(session_bus: str, qapp: Any) -> None:
    # the GUI runs asyncio on qasync's loop: dbus-fast must get its socket events there too
    import qasync
    import shiboken6

    loop = qasync.QEventLoop(qapp)
    try:
        delivered, shown = loop.run_until_complete(
            asyncio.wait_for(_show_job_completed(), timeout=20)
        )
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        # qasync's close() leaves its timer object's pending timers (wait_for's 20 s timeout)
        # registered; once the loop was collected, a later test's Qt event pass fired one on a
        # freed object and crashed the whole run. Deleting the timer object unregisters them.
        shiboken6.delete(loop._timer)
    assert delivered is True
    assert shown == [EXPECTED, EXPECTED]
