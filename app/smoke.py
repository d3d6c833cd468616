"""``tunedeck-gui --smoke-test``: does this install work? (the installers' check on every runner)

It uses the app's real parts on scratch folders, never the user's data: the data files a frozen
build must carry are read, the main window is opened (offscreen unless QT_QPA_PLATFORM says
otherwise) and painted, the core is started as on a normal start (store, receiver, launcher),
one metric is posted to the receiver with a job token over HTTP and read back from the store,
the store is reopened from its file, and everything is stopped. Exit 0 with one line per step;
any failure exits 1 naming the step and the reason.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCRATCH_VARIABLES = ("TUNEDECK_DATA_DIR", "TUNEDECK_CONFIG_DIR", "TUNEDECK_CACHE_DIR")
START_TIMEOUT_S = 60.0


class SmokeFailure(Exception):
    """One step failed; the message says what was expected and what happened."""


def _say(text: str) -> None:
    print(text, flush=True)


def check_data_files() -> str:
    """The files the app reads at run time, which a frozen build must have collected."""
    from app.core.receiver_openapi import load_openapi
    from app.core.runpod.bootstrap import agent_source
    from app.core.runpod.catalog import load_gpu_table
    from app.main import DEMO_PRESET, STYLE

    for path in (STYLE, DEMO_PRESET):
        if not path.is_file():
            raise SmokeFailure(f"{path} is missing from this install")
    openapi = load_openapi()
    if "paths" not in openapi:
        raise SmokeFailure("receiver_openapi.json has no 'paths'")
    table = load_gpu_table()
    source = agent_source()
    compile(source, "pod_agent.py", "exec")  # the agent travels as source: it must be whole
    return (
        f"style, demo preset, OpenAPI document, GPU table ({len(table.gpus)} GPUs, "
        f"{table.generated}), pod agent ({len(source)} characters)"
    )


# Imported only when a feature is used (planner, notifications, keyring, Hub checks): a frozen
# build that missed one would fail only then, so they are imported here.
LAZY_MODULES = ("huggingface_hub", "desktop_notifier", "keyring", "httpx", "trainer.planner")


def check_lazy_modules() -> str:
    import importlib

    for name in LAZY_MODULES:
        importlib.import_module(name)
    return ", ".join(LAZY_MODULES)


def run_smoke_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_API", "pyside6")
    scratch = Path(tempfile.mkdtemp(prefix="tunedeck-smoke-"))
    saved = {name: os.environ.get(name) for name in SCRATCH_VARIABLES}
    for name in SCRATCH_VARIABLES:
        os.environ[name] = str(scratch / name.rsplit("_", 2)[1].lower())
    # an exception inside a Qt slot is only printed by PySide6; here it fails the test
    slot_errors: list[str] = []
    previous_hook = sys.excepthook
    sys.excepthook = lambda kind, err, tb: slot_errors.append(f"{kind.__name__}: {err}")
    try:
        _run_steps(scratch)
        if slot_errors:
            raise SmokeFailure(f"a Qt callback raised {slot_errors[0]}")
    except SmokeFailure as failure:
        _say(f"smoke test FAILED: {failure}")
        return 1
    except Exception as err:  # any other failure is reported the same way, with its type
        _say(f"smoke test FAILED: {type(err).__name__}: {err}")
        return 1
    finally:
        sys.excepthook = previous_hook
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(scratch, ignore_errors=True)
    _say("smoke test passed")
    return 0


def _step(name: str, fn: Callable[[], str]) -> None:
    started = time.perf_counter()
    try:
        detail = fn()
    except SmokeFailure as failure:
        raise SmokeFailure(f"{name}: {failure}") from failure
    except Exception as err:
        raise SmokeFailure(f"{name}: {type(err).__name__}: {err}") from err
    _say(f"ok  {name} ({time.perf_counter() - started:.2f} s): {detail}")


def _run_steps(scratch: Path) -> None:
    from app.version import version_line

    _say(version_line("tunedeck-gui"))
    _step("data files", check_data_files)
    _step("modules", check_lazy_modules)

    from PySide6.QtWidgets import QApplication

    from app.main import Tunedeck, show_and_paint

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    holder: dict[str, Any] = {}

    def window() -> str:
        from app.core.settings import Settings

        # port 0 is not a valid setting: the default is used, or a free one when it is taken
        holder["tunedeck"] = Tunedeck(settings=Settings(first_run_done=True), base_dir=scratch)
        if not show_and_paint(holder["tunedeck"].window, app, timeout_s=20.0):
            raise SmokeFailure("the main window did not paint within 20 s")
        return f"main window painted on the {app.platformName()} platform"

    _step("window", window)

    def charts() -> str:
        # pyqtgraph and numpy load lazily, after the first paint: load them now, as the first
        # metric point would, so that a build missing either fails here
        import importlib

        chart_view = holder["tunedeck"].window.job_view.charts
        numpy = importlib.import_module("app.ui.chart_data").np
        return f"{type(chart_view).__name__} loaded, numpy {numpy.__version__}"

    _step("charts", charts)

    import asyncio

    import qasync  # type: ignore[import-untyped]  # no stubs upstream

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    tunedeck = holder["tunedeck"]
    try:
        with loop:
            _step("core", lambda: loop.run_until_complete(_start(tunedeck)))
            _step("receiver", lambda: loop.run_until_complete(_post_metric(tunedeck)))
            _step("store", lambda: _reopen_store(tunedeck))
            _step("stop", lambda: loop.run_until_complete(_stop(tunedeck)))
    finally:
        asyncio.set_event_loop(None)


async def _start(tunedeck: Any) -> str:
    import asyncio

    await asyncio.wait_for(tunedeck.start(), START_TIMEOUT_S)
    return f"store at {tunedeck.store.path}, receiver on {tunedeck.receiver.url}"


async def _post_metric(tunedeck: Any) -> str:
    import httpx

    from app.core.tokens import hash_token, new_job_token
    from trainer.events import METRICS_PATH

    store = tunedeck.store
    job = store.create_job(name="smoke test", method="sft", model="builtin:tiny-llama")
    token = new_job_token()
    store.update_job(job.id, token_hash=hash_token(token))
    store.set_status(job.id, "running")
    body = {"job_id": job.id, "metrics": [{"step": 1, "train_loss": 1.25}]}
    async with httpx.AsyncClient(base_url=tunedeck.receiver.url, timeout=10.0) as client:
        health = await client.get("/health")
        if health.status_code != 200:
            raise SmokeFailure(f"GET /health answered {health.status_code}")
        answer = await client.post(
            METRICS_PATH, json=body, headers={"Authorization": f"Bearer {token}"}
        )
    if answer.status_code != 200:
        raise SmokeFailure(f"POST {METRICS_PATH} answered {answer.status_code}: {answer.text}")
    points = store.metrics(job.id)
    if [p.get("step") for p in points] != [1] or points[0].get("train_loss") != 1.25:
        raise SmokeFailure(f"the store holds {points!r} after one posted point")
    store.set_status(job.id, "completed")
    tunedeck.smoke_job_id = job.id
    return f"one metric posted with a job token and stored (job {job.id})"


def _reopen_store(tunedeck: Any) -> str:
    from app.core.store import Store

    with Store(Path(tunedeck.store.path)) as again:
        job = again.get_job(tunedeck.smoke_job_id)
        if job is None or job.status != "completed":
            raise SmokeFailure(f"the reopened store has {job!r} for the smoke job")
        if len(again.metrics(job.id)) != 1:
            raise SmokeFailure("the reopened store lost the posted point")
    return f"reopened {tunedeck.store.path}: the job and its point are there"


async def _stop(tunedeck: Any) -> str:
    import asyncio

    url = tunedeck.receiver.url
    port = tunedeck.receiver.port
    await tunedeck.stop()
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except OSError:
        return f"receiver {url} stopped, store closed"
    writer.close()
    raise SmokeFailure(f"the receiver still accepts connections on {url} after stop")
