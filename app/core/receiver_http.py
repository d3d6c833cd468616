"""The receiver's HTTP plumbing: strict JSON replies, errors in one JSON shape, bounded reads.

Every reply is strict JSON (``allow_nan=False``: a NaN that slipped into the store is a bug to
log, never a literal a client must choke on). ``read_body`` bounds a body in size (413) and in
time (408: a client that sends a byte a second is cut off); a body that does not decode is a
400.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import zlib
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
    """The whole body, decoded: 413 past ``max_bytes`` (sent, or once inflated: a gzip bomb
    stops there), 408 when it takes longer than ``timeout_s`` to arrive, 400 when it does not
    decode (the server runs with aiohttp's own decompression off, so that a body that does not
    match its Content-Encoding is this 400 and never an exception inside aiohttp)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(
            max_size=max_bytes,
            actual_size=request.content_length,
            text=f"body over the limit of {max_bytes} bytes",
        )
    try:
        async with asyncio.timeout(timeout_s):
            # raises 413 past the app's client_max_size when no length was given
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the body did not arrive within {timeout_s:g} s"
        ) from None
    return _decoded(raw, request.headers.get("Content-Encoding", ""), max_bytes)


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decoded(raw: bytes, encoding: str, max_bytes: int) -> bytes:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return raw
    if name not in _WBITS:
        raise web.HTTPBadRequest(
            text=f"Content-Encoding {encoding!r} is not taken; send identity, gzip or deflate"
        )
    inflater = zlib.decompressobj(_WBITS[name])
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as err:
        raise web.HTTPBadRequest(text=f"the body is not {name} data ({err})") from None
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise web.HTTPRequestEntityTooLarge(
            max_size=max_bytes,
            actual_size=len(body),
            text=f"body over the limit of {max_bytes} bytes once inflated",
        )
    if not inflater.eof:
        raise web.HTTPBadRequest(text=f"the body is cut short: its {name} data does not end")
    return body
