"""The receiver's HTTP plumbing: strict JSON replies, errors in one JSON shape, bounded reads.

Every reply is strict JSON (``allow_nan=False``: a NaN that slipped into the store is a bug to
log, never a literal a client must choke on). ``read_body`` bounds a body in size (413) and in
time (408: a client that sends a byte a second is cut off).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("app.core.receiver")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_strict_dumps = functools.partial(json.dumps, allow_nan=False)


def json_reply(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_strict_dumps)


def error_reply(status: int, error: str, detail: str, **headers: str) -> web.Response:
    return json_reply({"error": error, "detail": detail}, status, **headers)


def unauthorized() -> web.Response:
    """The one 401: it never says which part was wrong, nor whether the job exists."""
    return error_reply(
        401,
        "unauthorized",
        "missing or wrong credentials",
        **{"WWW-Authenticate": 'Bearer realm="tunedeck"'},
    )


def not_found(job_id: str) -> web.Response:
    return error_reply(404, "unknown_job", f"no job {job_id!r} on this receiver")


def invalid(problems: list[str]) -> web.Response:
    return error_reply(422, "invalid", "; ".join(problems))


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own answers (404 route, 405 method, 413 body) in the same JSON shape
        reason = exc.reason.lower().replace(" ", "_")
        reply = error_reply(exc.status, reason, exc.text or exc.reason)
        if exc.status == 408:
            reply.force_close()
        return reply
    except Exception:
        log.exception("receiver bug while answering %s %s", request.method, request.path)
        return error_reply(500, "internal", "the receiver failed; see its log")


async def read_body(request: web.Request, *, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body: 413 past ``max_bytes``, 408 when it takes longer than ``timeout_s``."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(
            max_size=max_bytes,
            actual_size=request.content_length,
            text=f"body over the limit of {max_bytes} bytes",
        )
    try:
        async with asyncio.timeout(timeout_s):
            # raises 413 past the app's client_max_size when no length was given
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the body did not arrive within {timeout_s:g} s"
        ) from None
