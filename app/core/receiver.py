"""The embedded receiver: where trainers post metrics and alerts (DESIGN.md §3).

An aiohttp app (``create_app``) and ``ReceiverServer`` that runs it on whatever asyncio loop is
current: the GUI's qasync loop, or plain asyncio for ``tunedeck run``. Every body goes through the
one ``Ingestor``. Bound to 127.0.0.1 unless configured otherwise (a warning is logged then).

Statuses: 200 (a small JSON), 400 (a body that does not decode), 401 (the same for missing or
wrong credentials and an unknown job), 404 (an unknown job, to the install key only), 408 (a
body slower than ``read_timeout_s``), 410 ``job_closed`` (metrics of a job ended more than
``RECENT_JOB_S`` ago), 413 (over the limit, once inflated too), 422 (naming the field; NaN and
Infinity included). The order of the checks, credentials first, is in ``app.core.receiver_auth``.
Nothing a client sends produces a 500 (that is a bug, logged); replies are strict JSON. A
request head slower than ``read_timeout_s`` closes its connection; others are served meanwhile.
The Content-Type is not checked: a body is read as JSON whatever it says.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from app.core.ingest import Ingestor, InvalidPayload, parse_model
from app.core.jobs import Job, JobNotFound, is_final
from app.core.receiver_auth import (
    bearer,
    holds_install_key,
    may_hear_about_bodies,
    token_opens,
)
from app.core.receiver_http import (
    error_reply,
    errors_as_json,
    invalid,
    json_reply,
    not_found,
    read_body,
    unauthorized,
)
from app.core.receiver_openapi import load_openapi
from app.core.settings import receiver_host_warning
from app.core.store import Store
from trainer.events import ALERTS_PATH, METRICS_PATH, Alert, MetricsBatch

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
# A finished job still takes metrics this long: a trainer flushes its last batches after the
# final alert, and may resend after a receiver restart.
RECENT_JOB_S = 3600.0
# A request head, or a body, that takes longer than this to arrive is cut off (a slow client).
READ_TIMEOUT_S = 30.0
# After an answer sent before the body was read (401, 408), what is left of it is drained for at
# most this long, so that the client sees the answer rather than a reset; then the socket closes.
LINGER_S = 2.0

STORE_KEY = web.AppKey("store", Store)
INGESTOR_KEY = web.AppKey("ingestor", Ingestor)
API_KEY = web.AppKey("api_key", str)
READ_TIMEOUT_KEY = web.AppKey("read_timeout_s", float)
OPENAPI_KEY = web.AppKey("openapi", bytes)


def _closed(job: Job) -> web.Response:
    return error_reply(
        410,
        "job_closed",
        f"job {job.id!r} ended more than {RECENT_JOB_S:.0f} s ago; it takes no more metrics",
    )


async def _read_body(request: web.Request, token: str | None, keyed: bool) -> bytes | None:
    """The body; None when it has a problem the caller may not hear of (then: 401)."""
    try:
        return await read_body(
            request, max_bytes=MAX_BODY_BYTES, timeout_s=request.app[READ_TIMEOUT_KEY]
        )
    except web.HTTPException as err:
        if err.status == 408 or may_hear_about_bodies(request.app[STORE_KEY], token, keyed):
            raise
        return None


def _accepts_metrics(job: Job, now: float) -> bool:
    if not is_final(job.status):
        return True
    return job.ended_at is not None and now - job.ended_at < RECENT_JOB_S


async def post_metrics(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    token = bearer(request)
    if token is None:
        return unauthorized()
    body = await _read_body(request, token, keyed=False)
    if body is None:
        return unauthorized()
    try:
        batch: MetricsBatch = parse_model(MetricsBatch, body)
    except InvalidPayload as err:
        # the job is named in the body: a token of no job learns nothing about the body
        return (
            invalid(err.problems) if may_hear_about_bodies(store, token, False) else unauthorized()
        )
    job = token_opens(store, token, batch.job_id)
    if job is None:
        return unauthorized()
    if not _accepts_metrics(job, time.time()):
        return _closed(job)
    try:
        result = request.app[INGESTOR_KEY].ingest_metrics(job.id, batch.metrics)
    except InvalidPayload as err:
        return invalid(err.problems)
    except JobNotFound:  # deleted between the check and the write
        return not_found(job.id)
    return json_reply(
        {"ok": True, "job_id": job.id, "stored": result.stored, "merged": result.merged}
    )


async def post_alert(request: web.Request) -> web.Response:
    """The install key opens every job's alerts; a job's token opens its own (decision 2)."""
    store = request.app[STORE_KEY]
    keyed = holds_install_key(request, request.app[API_KEY])
    token = None if keyed else bearer(request)
    if not keyed and token is None:
        return unauthorized()
    body = await _read_body(request, token, keyed)
    if body is None:
        return unauthorized()
    try:
        alert: Alert = parse_model(Alert, body)
    except InvalidPayload as err:
        return (
            invalid(err.problems) if may_hear_about_bodies(store, token, keyed) else unauthorized()
        )
    if token is not None and token_opens(store, token, alert.job_id) is None:
        return unauthorized()
    try:
        result = request.app[INGESTOR_KEY].ingest_alert(alert)
    except InvalidPayload as err:
        return invalid(err.problems)
    except JobNotFound:
        return not_found(alert.job_id)
    status = result.job.status if result.job else None
    return json_reply(
        {"ok": True, "job_id": alert.job_id, "stored": bool(result.stored), "status": status}
    )


def _job_for_reading(request: web.Request) -> Job | web.Response:
    """Read endpoints take the install key (404 for an unknown job), or the job's own token."""
    store, job_id = request.app[STORE_KEY], request.match_info["job_id"]
    if holds_install_key(request, request.app[API_KEY]):
        return store.get_job(job_id) or not_found(job_id)
    token = bearer(request)
    job = token_opens(store, token, job_id) if token is not None else None
    return job or unauthorized()


async def get_metrics(request: web.Request) -> web.Response:
    job = _job_for_reading(request)
    if isinstance(job, web.Response):
        return job
    after = request.query.get("after_step")
    try:
        after_step = int(after) if after is not None else None
    except ValueError:
        return error_reply(422, "invalid", f"after_step: must be an integer (got {after!r})")
    if after_step is not None and not -(2**62) < after_step < 2**62:
        return error_reply(422, "invalid", f"after_step: out of range (got {after!r})")
    points = request.app[STORE_KEY].metrics(job.id, after_step=after_step)
    return json_reply({"job_id": job.id, "metrics": points})


async def get_alerts(request: web.Request) -> web.Response:
    job = _job_for_reading(request)
    if isinstance(job, web.Response):
        return job
    return json_reply({"job_id": job.id, "alerts": request.app[STORE_KEY].alerts(job.id)})


async def get_health(request: web.Request) -> web.Response:
    return json_reply({"status": "ok", "service": "tunedeck-receiver"})


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_KEY], content_type="application/json")


def create_app(
    ingestor: Ingestor, store: Store, *, api_key: str, read_timeout_s: float = READ_TIMEOUT_S
) -> web.Application:
    """The receiver's aiohttp application (handy on its own for aiohttp's test client)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[errors_as_json])
    app[STORE_KEY] = store
    app[INGESTOR_KEY] = ingestor
    app[API_KEY] = api_key
    app[READ_TIMEOUT_KEY] = float(read_timeout_s)
    app[OPENAPI_KEY] = json.dumps(load_openapi()).encode("utf-8")
    app.router.add_post(METRICS_PATH, post_metrics)
    app.router.add_post(ALERTS_PATH, post_alert)
    app.router.add_get("/health", get_health)
    app.router.add_get("/openapi.json", get_openapi)
    app.router.add_get("/api/jobs/{job_id}/metrics", get_metrics)
    app.router.add_get("/api/jobs/{job_id}/alerts", get_alerts)
    return app


class ReceiverServer:
    """The receiver on the current asyncio loop: ``port = await start()``, ``await stop()``.

    ``port`` is the preferred one; when it is taken, a free port is used instead (0 asks for a
    free port outright). ``url`` is what a trainer on this machine posts to. ``read_timeout_s``
    bounds a slow client (see the module's docstring).
    """

    def __init__(
        self,
        ingestor: Ingestor,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        if not api_key:
            raise ValueError("the receiver needs an API key for alerts")
        self.ingestor = ingestor
        self.store = store
        self.host = host
        self.preferred_port = port
        self.api_key = api_key
        self.read_timeout_s = read_timeout_s
        self.port: int | None = None
        self.fell_back = False
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the receiver is not running")
        # a trainer on this machine reaches a wildcard bind through loopback
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.url + METRICS_PATH

    @property
    def alerts_url(self) -> str:
        return self.url + ALERTS_PATH

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def bound_addresses(self) -> list[str]:
        """The host of every socket it listens on (what a security check looks at)."""
        return [str(a[0]) for a in self._runner.addresses] if self._runner else []

    async def start(self) -> int:
        if self._runner is not None:
            raise RuntimeError("the receiver is already running")
        warning = receiver_host_warning(self.host)
        if warning:
            log.warning("%s", warning)
        app = create_app(
            self.ingestor, self.store, api_key=self.api_key, read_timeout_s=self.read_timeout_s
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            # also bounds a request head that trickles in: the timer runs until a whole
            # head has arrived (aiohttp closes a connection still waiting for one)
            keepalive_timeout=self.read_timeout_s,
            lingering_time=min(LINGER_S, self.read_timeout_s),
            auto_decompress=False,  # read_body decodes, within the size limit
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.preferred_port, backlog=512)
            try:
                await site.start()
            except OSError as err:
                if self.preferred_port == 0:
                    raise
                log.warning(
                    "receiver port %s on %s is taken (%s); using a free port",
                    self.preferred_port,
                    self.host,
                    err.strerror,
                )
                self.fell_back = True
                site = web.TCPSite(runner, self.host, 0, backlog=512)
                await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = _bound_port(runner)
        log.info("receiver listening on %s", self.url)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    addresses = runner.addresses  # (host, port, ...) of every listening socket
    if not addresses:
        raise RuntimeError("the receiver started but has no listening socket")
    return int(addresses[0][1])
