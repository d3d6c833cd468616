"""The embedded receiver: where trainers post metrics and alerts (DESIGN.md §3).

An aiohttp app (``create_app``) and ``ReceiverServer`` that runs it on whatever asyncio loop is
current: the GUI's qasync loop, or plain asyncio for ``tunedeck run``. Every body goes through the
one ``Ingestor``. Bound to 127.0.0.1 unless configured otherwise (a warning is logged then).

Statuses: 200 with a small JSON; 401 for missing or wrong credentials (never which part);
404 for an unknown job; 413 for a body over the limit; 422 naming the field that does not fit.
Nothing a client sends produces a 500: a 500 is a bug, logged with its traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from app.core.ingest import Ingestor, InvalidPayload, parse_model
from app.core.jobs import Job, JobNotFound, is_final
from app.core.receiver_openapi import load_openapi
from app.core.settings import receiver_host_warning
from app.core.store import Store
from app.core.tokens import key_matches, token_matches
from trainer.events import ALERTS_PATH, METRICS_PATH, Alert, MetricsBatch

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
# A finished job still takes metrics this long: a trainer flushes its last batches after the
# final alert, and may resend after a receiver restart.
RECENT_JOB_S = 3600.0

STORE_KEY = web.AppKey("store", Store)
INGESTOR_KEY = web.AppKey("ingestor", Ingestor)
API_KEY = web.AppKey("api_key", str)
OPENAPI_KEY = web.AppKey("openapi", bytes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, error: str, detail: str, **headers: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def _unauthorized() -> web.Response:
    return _error(
        401,
        "unauthorized",
        "missing or wrong credentials",
        **{"WWW-Authenticate": 'Bearer realm="tunedeck"'},
    )


def _not_found(job_id: str) -> web.Response:
    return _error(404, "unknown_job", f"no job {job_id!r} on this receiver")


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own answers (404 route, 405 method, 413 body) in the same JSON shape
        reason = exc.reason.lower().replace(" ", "_")
        return _error(exc.status, reason, exc.text or exc.reason)
    except Exception:
        log.exception("receiver bug while answering %s %s", request.method, request.path)
        return _error(500, "internal", "the receiver failed; see its log")


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES,
            actual_size=request.content_length,
            text=f"body over the limit of {MAX_BODY_BYTES} bytes",
        )
    return await request.read()  # raises 413 past client_max_size when no length was given


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _accepts_metrics(job: Job, now: float) -> bool:
    if not is_final(job.status):
        return True
    return job.ended_at is not None and now - job.ended_at < RECENT_JOB_S


async def post_metrics(request: web.Request) -> web.Response:
    token = _bearer(request)
    if token is None:
        return _unauthorized()
    body = await _read_body(request)
    try:
        batch: MetricsBatch = parse_model(MetricsBatch, body)
    except InvalidPayload as err:
        return _error(422, "invalid", "; ".join(err.problems))
    store = request.app[STORE_KEY]
    job = store.get_job(batch.job_id)
    if job is None:
        return _not_found(batch.job_id)
    if not token_matches(token, job.token_hash) or not _accepts_metrics(job, time.time()):
        return _unauthorized()
    try:
        result = request.app[INGESTOR_KEY].ingest_metrics(batch.job_id, batch.metrics)
    except JobNotFound:  # deleted between the check and the write
        return _not_found(batch.job_id)
    return web.json_response(
        {"ok": True, "job_id": batch.job_id, "stored": result.stored, "merged": result.merged}
    )


async def post_alert(request: web.Request) -> web.Response:
    if not key_matches(request.headers.get("X-API-Key", ""), request.app[API_KEY]):
        return _unauthorized()
    body = await _read_body(request)
    try:
        alert: Alert = parse_model(Alert, body)
    except InvalidPayload as err:
        return _error(422, "invalid", "; ".join(err.problems))
    try:
        result = request.app[INGESTOR_KEY].ingest_alert(alert)
    except JobNotFound:
        return _not_found(alert.job_id)
    status = result.job.status if result.job else None
    return web.json_response(
        {"ok": True, "job_id": alert.job_id, "stored": bool(result.stored), "status": status}
    )


def _reader_allowed(request: web.Request, job: Job) -> bool:
    """Read endpoints take the API key, or the job's own token."""
    if key_matches(request.headers.get("X-API-Key", ""), request.app[API_KEY]):
        return True
    token = _bearer(request)
    return token is not None and token_matches(token, job.token_hash)


def _job_for_reading(request: web.Request) -> Job | web.Response:
    job = request.app[STORE_KEY].get_job(request.match_info["job_id"])
    if job is None:
        if request.headers.get("X-API-Key") is None and _bearer(request) is None:
            return _unauthorized()
        return _not_found(request.match_info["job_id"])
    if not _reader_allowed(request, job):
        return _unauthorized()
    return job


async def get_metrics(request: web.Request) -> web.Response:
    job = _job_for_reading(request)
    if isinstance(job, web.Response):
        return job
    after = request.query.get("after_step")
    try:
        after_step = int(after) if after is not None else None
    except ValueError:
        return _error(422, "invalid", f"after_step: must be an integer (got {after!r})")
    if after_step is not None and not -(2**62) < after_step < 2**62:
        return _error(422, "invalid", f"after_step: out of range (got {after!r})")
    points = request.app[STORE_KEY].metrics(job.id, after_step=after_step)
    return web.json_response({"job_id": job.id, "metrics": points})


async def get_alerts(request: web.Request) -> web.Response:
    job = _job_for_reading(request)
    if isinstance(job, web.Response):
        return job
    return web.json_response({"job_id": job.id, "alerts": request.app[STORE_KEY].alerts(job.id)})


async def get_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": "tunedeck-receiver"})


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_KEY], content_type="application/json")


def create_app(ingestor: Ingestor, store: Store, *, api_key: str) -> web.Application:
    """The receiver's aiohttp application (handy on its own for aiohttp's test client)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_errors_as_json])
    app[STORE_KEY] = store
    app[INGESTOR_KEY] = ingestor
    app[API_KEY] = api_key
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
    free port outright). ``url`` is what a trainer on this machine posts to.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str,
    ) -> None:
        if not api_key:
            raise ValueError("the receiver needs an API key for alerts")
        self.ingestor = ingestor
        self.store = store
        self.host = host
        self.preferred_port = port
        self.api_key = api_key
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

    async def start(self) -> int:
        if self._runner is not None:
            raise RuntimeError("the receiver is already running")
        warning = receiver_host_warning(self.host)
        if warning:
            log.warning("%s", warning)
        app = create_app(self.ingestor, self.store, api_key=self.api_key)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
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
