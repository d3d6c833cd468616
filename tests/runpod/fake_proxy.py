"""The fake's stand-in for RunPod's HTTPS proxy: ``/proxy/{pod_id}-{port}/...`` is forwarded to
the simulated pod's local port for ``port``. Like the real proxy it answers 502 while nothing
listens, can be made unreachable for a while, and cuts a request that runs past its limit
(the real one cuts at about 100 s, answering Cloudflare's 524)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from tests.runpod.fake_runpod import FakeRunPod

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
CUT_STATUS = 524


@dataclass
class ProxyFaults:
    cut_s: float = 100.0
    unreachable: dict[str, tuple[float, int]] = field(
        default_factory=dict
    )  # pod -> (until, status)


def proxy_handler(fake: FakeRunPod) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    session: list[aiohttp.ClientSession] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        pod_id, _, port = request.match_info["target"].rpartition("-")
        pod = fake.pods.get(pod_id)
        if pod is None or pod.terminated_at is not None or not port.isdigit():
            return web.Response(status=404, text="404: no such pod or port\n")
        until, status = fake.proxy.unreachable.get(pod_id, (0.0, 502))
        if time.monotonic() < until:
            return web.Response(status=status, text=f"{status}: the pod is unreachable\n")
        local = pod.port_map.get(int(port))
        if local is None or fake.pod_status(pod_id) != "RUNNING":
            return web.Response(status=502, text="502: the pod does not answer on that port\n")
        if not session:
            session.append(aiohttp.ClientSession(auto_decompress=False))
        tail = request.match_info.get("tail", "")
        url = f"http://127.0.0.1:{local}/{tail}"
        if request.query_string:
            url += f"?{request.query_string}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with asyncio.timeout(fake.proxy.cut_s):
                async with session[0].request(
                    request.method,
                    url,
                    headers=headers,
                    data=await request.read(),
                    allow_redirects=False,
                ) as upstream:
                    body = await upstream.read()
                    reply_headers = {
                        k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
                    }
                    return web.Response(status=upstream.status, body=body, headers=reply_headers)
        except TimeoutError:
            return web.Response(status=CUT_STATUS, text="524: a timeout occurred\n")
        except aiohttp.ClientError:
            return web.Response(status=502, text="502: the pod does not answer on that port\n")

    async def close(app: web.Application) -> None:
        if session:
            await session[0].close()

    forward.on_cleanup = close  # type: ignore[attr-defined]
    return forward
