"""The desktop app's entry point (``tunedeck-gui``, ``python -m app.main``).

Start-up order, chosen so that the window paints at once (bench/startup.py):

1. QApplication, the main window (widgets only), show, and wait for its first paint;
2. then the asyncio loop on Qt's (qasync), the store, the ingest path, the receiver (aiohttp),
   the local launcher, notifications; running local jobs are reattached; the window reads the
   history;
3. on the first start ever, or with ``--demo``: the demo run (resources/presets/demo-sft.json).

``Tunedeck`` is the composition root: tests build it with their own notifier and credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

os.environ.setdefault("QT_API", "pyside6")  # before qasync picks a binding

from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core import paths
from app.ui.main_window import MainWindow
from app.ui.presets import BUILTIN_DIR, PresetLibrary

if TYPE_CHECKING:
    import asyncio

    from app.core.ingest import Ingestor
    from app.core.launcher_local import LocalLauncher
    from app.core.runpod.launcher import RunPodLauncher
    from app.core.stall import StallDetector
    from app.core.store import Store

log = logging.getLogger("tunedeck")
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "resources" / "style.qss"
DEMO_PRESET = BUILTIN_DIR / "demo-sft.json"
RUNPOD_NO_KEY = "Add a RunPod API key in Settings (Credentials) to run on a cloud GPU."
STALL_CHECK_MS = 30_000
LOG_TAIL_BYTES = 1 << 20


class CoreJobService:
    """``app.ui.job_service.JobService`` over app.core: the store and the local launcher."""

    def __init__(self, store: Store, ingestor: Ingestor, launcher: LocalLauncher) -> None:
        self.store = store
        self.ingestor = ingestor
        self.launcher = launcher
        self.runpod: RunPodLauncher | None = None  # set while a RunPod key is stored
        self.gpus: tuple[list[Any] | None, str] = (None, "")  # RunPod's live catalog, once read

    def _launcher_of(self, job_id: str) -> Any:
        """The launcher of the job's target (a cloud job is never handed to the local one)."""
        from app.core.launcher import LaunchError

        job = self.store.get_job(job_id)
        if job is not None and job.target == "runpod":
            if self.runpod is None:
                raise LaunchError(f"job {job_id} runs on RunPod. {RUNPOD_NO_KEY}")
            return self.runpod
        return self.launcher

    def gpu_choices(self) -> tuple[list[Any] | None, str]:
        """RunPod's GPU types and where they come from (None: the table shipped with the app)."""
        return self.gpus

    def cloud_meter(self, job_id: str) -> str | None:
        """A cloud job's phase and money so far, for the job view (None: not a cloud job)."""
        return self.runpod.meter(job_id) if self.runpod is not None else None

    def list_jobs(self) -> list[Any]:
        return self.store.list_jobs()

    def get_job(self, job_id: str) -> Any:
        return self.store.get_job(job_id)

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return self.store.metrics(job_id)

    def alerts(self, job_id: str) -> list[dict[str, Any]]:
        return self.store.alerts(job_id)

    def log_text(self, job_id: str) -> str:
        job = self.store.get_job(job_id)
        if job is None or not job.log_path:
            return ""
        try:
            with open(job.log_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - LOG_TAIL_BYTES))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def config(self, job_id: str) -> dict[str, Any] | None:
        job = self.store.get_job(job_id)
        return job.config() if job is not None else None

    def delete_job(self, job_id: str) -> None:
        self.store.delete_job(job_id)

    def process_alive(self, job_id: str) -> bool:
        from app.core.launcher import LaunchError

        try:
            return bool(self._launcher_of(job_id).status(job_id).running)
        except LaunchError:
            return False

    def targets(self) -> dict[str, str | None]:
        return {"local": None, "runpod": None if self.runpod is not None else RUNPOD_NO_KEY}

    async def launch(self, config: Any, target: str) -> str:
        from app.core.launcher import LaunchError, create_job_for, start_job

        launcher: Any = self.launcher
        if target == "runpod":
            if self.runpod is None:
                raise LaunchError(RUNPOD_NO_KEY, "Or run it on this computer.")
            launcher = self.runpod
        job = create_job_for(self.store, config, target=target)
        await start_job(self.store, self.ingestor, launcher, job, config)
        return job.id

    async def cancel(self, job_id: str) -> None:
        await self._launcher_of(job_id).cancel(job_id)

    async def resume(self, job_id: str) -> None:
        await self._launcher_of(job_id).resume(job_id)


class Tunedeck:
    """The running app: window, store, receiver, launcher, notifications."""

    def __init__(
        self,
        *,
        settings: Any = None,
        credentials: Any = None,
        notifier: Any = None,
        base_dir: Path | None = None,
        grace_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.notifier = notifier
        # A desktop app's working folder is wherever the launcher left it (often $HOME or /):
        # relative output folders go under the data folder instead, next to the job store.
        # Relative dataset paths still resolve there first, then in the Tunedeck install.
        self.base_dir = base_dir or paths.data_dir()
        self.grace_s = grace_s
        self.window = MainWindow(PresetLibrary(paths.config_dir() / "presets"))
        self.window.settings_requested.connect(self.open_settings)
        self.store: Any = None
        self.ingestor: Any = None
        self.receiver: Any = None
        self.launcher: Any = None
        self.runpod: Any = None  # RunPodLauncher while a RunPod key is stored
        self.runpod_client: Any = None
        self.pods_dialog: Any = None
        self.service: CoreJobService | None = None
        self.bridge: Any = None
        self.notifications: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_seen: dict[str, float] = {}
        self._following_since = 0.0  # when this app instance started following runs
        self.stall_detector: StallDetector | None = None
        self._stall_timer: QTimer | None = None

    async def start(self) -> None:
        """Start the core and connect the window to it (after the first paint)."""
        from app.core.credentials import CredentialStore, read_secret
        from app.core.ingest import Ingestor
        from app.core.launcher import ReceiverAddress
        from app.core.launcher_local import LocalLauncher
        from app.core.notifications import AlertNotifications, NotificationPolicy
        from app.core.receiver import ReceiverServer
        from app.core.settings import load_settings
        from app.core.store import Store
        from app.ui.bridge import Bridge

        if self.settings is None:
            loaded = load_settings()
            self.settings = loaded.settings
            for warning in loaded.warnings:
                self.window.statusBar().showMessage(warning, 10_000)
        if self.credentials is None:
            self.credentials = CredentialStore()
        if self.notifier is None:
            from app.ui.tray import pick_notifier

            self.notifier = pick_notifier(self.window.windowIcon(), self.window)

        self.store = Store()
        self.ingestor = Ingestor(self.store)
        self.bridge = Bridge(self.window)
        # the keyring may be slow to answer (NOTES.md): never on the GUI thread
        api_key = await _in_thread(self.credentials.receiver_api_key)
        self.receiver = ReceiverServer(
            self.ingestor,
            self.store,
            host=self.settings.receiver_host,
            port=self.settings.receiver_port,
            api_key=api_key,
        )
        await self.receiver.start()
        self.launcher = LocalLauncher(
            self.store,
            self.ingestor,
            receiver=ReceiverAddress(self.receiver.url, api_key),
            # resolved by launch_python at each start ('' in a frozen app: the setup hint)
            python=self.settings.trainer_python,
            base_dir=self.base_dir,
            on_output=lambda job_id, line: self.bridge.on_output(job_id, line + "\n"),
            on_exit=self.bridge.on_exit,
            # read at every launch: a token saved in Settings is used by the next run
            hf_token_source=lambda: read_secret(self.credentials, "hf_token"),
        )
        if self.grace_s is not None:
            # tests shorten the grace period before a kill
            cancel = self.launcher.cancel
            self.launcher.cancel = lambda job_id, grace_s=self.grace_s: cancel(job_id, grace_s)
        self.notifications = AlertNotifications(
            self.notifier,
            NotificationPolicy.from_settings(self.settings),
            secrets=self.credentials.known_values,
            job_label=self._job_label,
        )
        self.ingestor.subscribe_callbacks(
            on_metrics=self._heard_metrics,
            on_alert=self._heard_alert,
            on_job_changed=self.bridge.on_job_changed,
        )
        self._following_since = time.time()
        reattached = await self.launcher.reattach_all()
        self.service = CoreJobService(self.store, self.ingestor, self.launcher)
        reattached += await self.start_runpod()
        self.window.job_view.meter_source = self.service.cloud_meter
        from app.core.chat_session import ChatCatalog

        chats = ChatCatalog(self.store, self.base_dir)  # the Try tab's models (issue 12)
        self.window.job_view.try_tab.attach(
            chats.targets,
            others_of=chats.other_targets,
            python=self._trainer_python,
        )
        from app.core.plan_records import memory_line

        store = self.store
        self.window.job_view.memory_source = lambda job_id: memory_line(store, job_id)
        self.window.pods_requested.connect(self.open_pods)
        self.window.attach(self.service, self.bridge)
        self._start_stall_watch()
        note = f"Receiver on {self.receiver.url}"
        if self.receiver.fell_back:
            note += f" (port {self.settings.receiver_port} was taken)"
        if reattached:
            note += f" · following {len(reattached)} run(s) still going"
        problem = getattr(self.credentials, "problem", None)
        if problem is not None:
            note += f" · {problem.message} Secrets are kept for this session only."
        self.window.statusBar().showMessage(note)

    def _trainer_python(self) -> str:
        """The Python the Try tab's chats use: launch_python over the settings in memory (a
        choice saved in Settings applies to the next model loaded)."""
        from app.core.trainer_python import launch_python

        return launch_python(configured=getattr(self.settings, "trainer_python", ""))

    def _job_label(self, job_id: str) -> str | None:
        job = self.store.get_job(job_id) if self.store else None
        return job.name if job else None

    def _heard_metrics(self, job_id: str, points: list[dict[str, Any]]) -> None:
        self._last_seen[job_id] = time.time()
        self.bridge.on_metrics(job_id, points)

    def _heard_alert(self, job_id: str, alert: dict[str, Any]) -> None:
        self._last_seen[job_id] = time.time()
        self.bridge.on_alert(job_id, alert)
        import asyncio

        task = asyncio.ensure_future(self.notifications.handle(alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_stall_watch(self) -> None:
        from app.core.stall import StallDetector

        self.stall_detector = StallDetector.from_minutes(self.settings.stall_minutes)
        self._stall_timer = QTimer()  # not a child of the window: stop() may outlive it
        self._stall_timer.setInterval(STALL_CHECK_MS)
        self._stall_timer.timeout.connect(self.check_stalls)
        self._stall_timer.start()

    def check_stalls(self, now: float | None = None) -> list[str]:
        """Raise ``stalled`` for running jobs silent for too long; the ids raised (the timer's
        tick, callable by tests with a later ``now``)."""
        from app.core.stall import silence_since

        if self.stall_detector is None or self.store is None:
            return []
        since = {
            job.id: silence_since(
                self._last_seen.get(job.id),
                job.started_at or job.created_at,
                self._following_since,
            )
            for job in self.store.list_jobs(status="running")
        }
        due = self.stall_detector.due(since, now)
        for job_id in due:
            self._raise_stalled(job_id, self.stall_detector.silent_for(job_id, since[job_id], now))
        return due

    def _raise_stalled(self, job_id: str, silent_s: float) -> None:
        from app.core.stall import stalled_alert

        job = self.store.get_job(job_id)
        alert = stalled_alert(job_id, silent_s, model_name=job.model if job else None)
        self.ingestor.ingest_alert(alert)

    async def launch_demo(self) -> str:
        """The demo run: a tiny model on the bundled dataset, on this computer."""
        from app.ui.presets import read_config_file
        from trainer.config import parse_config

        config = parse_config(read_config_file(DEMO_PRESET), str(DEMO_PRESET))
        job_id = await self.window.launch(config, "local")
        self.window.job_view.tabs.setCurrentIndex(0)  # the charts
        return job_id

    def first_start(self) -> bool:
        return not bool(getattr(self.settings, "first_run_done", True))

    def mark_first_run_done(self) -> None:
        from app.core.settings import save_settings

        self.settings.first_run_done = True
        try:
            save_settings(self.settings)
        except OSError as err:
            log.warning("could not save settings: %s", err)

    def open_settings(self) -> None:
        if self.credentials is None:
            return
        from app.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self.credentials, self.window)
        dialog.settings_saved.connect(self._settings_saved)
        dialog.open()

    def _settings_saved(self, settings: Any) -> None:
        """Every saved choice applies at once, except the receiver's address (the running
        trainers report to the current one): the dialog and this message say so."""
        from app.core.notifications import NotificationPolicy

        previous, self.settings = self.settings, settings
        if self.notifications is not None:
            self.notifications.policy = NotificationPolicy.from_settings(settings)
        if self.launcher is not None:
            self.launcher.python = settings.trainer_python
        if self.stall_detector is not None:
            self.stall_detector.stall_after_s = settings.stall_minutes * 60.0
        # the Hub token is read from the credentials at each launch (hf_token_source)
        if self.service is not None and self.runpod is None:
            self._background(self.start_runpod())  # a RunPod key saved just now enables it
        note = "Settings saved and applied"
        moved = (previous.receiver_host, previous.receiver_port) != (
            settings.receiver_host,
            settings.receiver_port,
        )
        if moved:
            note += "; the receiver's new address applies the next time Tunedeck starts"
        self.window.statusBar().showMessage(note, 10_000)

    # -- RunPod -----------------------------------------------------------------------------------

    async def start_runpod(self) -> list[str]:
        """With a RunPod key stored: the RunPod launcher (cloud jobs reattached; their ids),
        then, in the background, the live GPU catalog and the start-up check for orphan pods."""
        from app.core.credentials import read_secret
        from app.core.runpod.endpoints import runpod_endpoints
        from app.core.runpod.launcher import RunPodLauncher

        if self.runpod is not None or self.service is None:
            return []
        key = await read_secret(self.credentials, "runpod_api_key")
        if not key:
            return []
        endpoints = runpod_endpoints()
        self.runpod_client = endpoints.client(key)
        self.runpod = RunPodLauncher(
            self.store,
            self.ingestor,
            self.runpod_client,
            endpoints=endpoints,
            base_dir=self.base_dir,
            hf_token_source=lambda: read_secret(self.credentials, "hf_token"),
            on_output=lambda job_id, line: self.bridge.on_output(job_id, line + "\n"),
            on_exit=self.bridge.on_exit,
            trainer_python=getattr(self.settings, "trainer_python", None) or None,
        )
        self.service.runpod = self.runpod
        reattached: list[str] = await self.runpod.reattach_all()
        self._background(self._read_gpu_catalog())
        self._background(self.check_orphans())
        return reattached

    def _background(self, work: Any) -> None:
        import asyncio

        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _read_gpu_catalog(self) -> None:
        from app.core.runpod.errors import RunPodError

        try:
            gpus = await self.runpod_client.gpu_types()
        except RunPodError as err:
            log.warning("RunPod's GPU catalog could not be read: %s", err)
            return
        if self.service is not None:
            self.service.gpus = (gpus, "Prices and stock from RunPod now.")

    async def check_orphans(self) -> list[Any]:
        """At start-up: pods that bill with no running job are shown at once."""
        from app.core.runpod.errors import RunPodError
        from app.core.runpod.orphans import find_orphans

        try:
            orphans = await find_orphans(self.runpod_client, self.store)
        except RunPodError as err:
            log.warning("RunPod's pods could not be listed: %s", err)
            return []
        if any(o.made_by_tunedeck for o in orphans):
            self.open_pods()
        elif orphans:  # the user's own pods: worth a note, not a dialog at every start
            per_hour = sum(o.pod.cost_per_hour for o in orphans)
            self.window.statusBar().showMessage(
                f"{len(orphans)} other pod(s) on your RunPod account bill ${per_hour:.2f} an hour "
                "(File ▸ Cloud pods…)",
                15_000,
            )
        return orphans

    def open_pods(self) -> None:
        """File ▸ Cloud pods…: the pods billing without a running job, one-click terminate."""
        if self.runpod_client is None:
            self.window.statusBar().showMessage(RUNPOD_NO_KEY, 10_000)
            return
        from app.core.runpod.orphans import find_orphans, terminate_verified
        from app.ui.pods_dialog import PodsDialog

        client, store = self.runpod_client, self.store
        if self.pods_dialog is None:
            self.pods_dialog = PodsDialog(
                lambda: find_orphans(client, store),
                lambda pod_id: terminate_verified(client, pod_id, store=store),
                self.window,
            )
        self.pods_dialog.open()
        self._background(self.pods_dialog.refresh())

    async def stop(self) -> None:
        """Stop following runs (they keep going), stop the receiver, close the store."""
        if self._stall_timer is not None:
            self._stall_timer.stop()
        # the window may outlive this (tests, a failed start): its ticks must not read a closed
        # store
        self.window.job_view.meter_source = None
        self.window.job_view.memory_source = None
        for task in list(self._tasks):
            task.cancel()
        if self.launcher is not None:
            await self.launcher.close()
        if self.runpod is not None:
            await self.runpod.close()
        if self.runpod_client is not None:
            await self.runpod_client.aclose()
        if self.receiver is not None:
            await self.receiver.stop()
        close_notifier = getattr(self.notifier, "close", None)
        if callable(close_notifier):
            close_notifier()
        if self.store is not None:
            self.store.close()


def _log_failure(task: Any) -> None:
    """A background task's unexpected error is a bug: logged with its traceback, not lost."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


async def _in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` on a daemon thread of its own. Not ``asyncio.to_thread``: qasync runs that on
    QThreads, and a QThread still alive at exit aborts the process (a keyring call can hang)."""
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            result = fn()
        except BaseException as err:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(_settle, future, None, err)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=work, name="tunedeck-start", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[Any], result: Any, err: BaseException | None) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(err)
    else:
        future.set_result(result)


class _FirstPaint(QObject):
    """Calls back once, right after the watched widget's first paint."""

    def __init__(self, widget: Any, callback: Any) -> None:
        super().__init__(widget)
        self._callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self._callback)
        return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tunedeck-gui", description="Tunedeck desktop app")
    parser.add_argument(
        "--demo", action="store_true", help="launch the demo run (tiny model, bundled dataset)"
    )
    parser.add_argument(
        "--no-demo", action="store_true", help="do not launch the demo, even on the first start"
    )
    parser.add_argument("--exit-after-first-paint", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="check this install on scratch folders (window, receiver, store); exit 0 if it works",
    )
    return parser.parse_args(argv)


def show_and_paint(window: Any, app: QApplication, timeout_s: float = 5.0) -> bool:
    """Show the window and process events until it has painted once (True) or time is up."""
    painted: list[bool] = []
    _FirstPaint(window, lambda: painted.append(True))
    window.show()
    deadline = time.monotonic() + timeout_s
    while not painted and time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)
    return bool(painted)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        from app.version import version_line

        print(version_line("tunedeck-gui"))
        return 0
    if args.smoke_test:
        from app.smoke import run_smoke_test

        return run_smoke_test()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("Tunedeck")
    app.setOrganizationName("Tunedeck")
    with contextlib.suppress(OSError):
        app.setStyleSheet(STYLE.read_text(encoding="utf-8"))
    tunedeck = Tunedeck()
    # The window paints before asyncio, qasync, aiohttp, pydantic and pyqtgraph are even
    # imported: a desktop app that shows itself at once (bench/startup.py).
    show_and_paint(tunedeck.window, app)
    if args.exit_after_first_paint:
        print("first-paint", flush=True)
        return 0

    import asyncio

    import qasync  # type: ignore[import-untyped]  # no stubs upstream

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)

    async def run() -> None:
        try:
            await tunedeck.start()
        except Exception as err:
            log.exception("start-up failed")
            text = f"{err}\n\n{getattr(err, 'hint', '')}".strip()
            # a modal box spins a nested Qt loop: never inside a running coroutine
            QTimer.singleShot(
                0,
                lambda: QMessageBox.critical(tunedeck.window, "Tunedeck could not start", text),
            )
            return
        if not getattr(tunedeck.settings, "trainer_python", ""):
            # an installed Tunedeck has no training stack: offer to set one up (the demo waits
            # for the next start, when it can run)
            from app.ui.trainer_env_dialog import offer_training_setup

            def use(python: str) -> None:
                tunedeck._settings_saved(
                    tunedeck.settings.model_copy(update={"trainer_python": python})
                )

            QTimer.singleShot(0, lambda: offer_training_setup(tunedeck.window, use))
        elif args.demo or (tunedeck.first_start() and not args.no_demo):
            tunedeck.mark_first_run_done()
            await tunedeck.launch_demo()

    with loop:
        tunedeck._tasks.add(loop.create_task(run()))
        # pyqtgraph loads while the core starts: the charts are ready for the first point
        QTimer.singleShot(50, lambda: tunedeck.window.job_view.charts)
        loop.run_until_complete(closed.wait())
        loop.run_until_complete(tunedeck.stop())
    return 0


if __name__ == "__main__":
    sys.exit(main())
