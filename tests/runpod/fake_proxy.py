"""The fake's stand-in for RunPod's HTTPS proxy: ``/proxy/{pod_id}-{port}/...`` is forwarded to
the simulated pod's local port for ``port``. Like the real proxy it answers 502 while nothing
listens, can be made unreachable for a while, and cuts a request that runs past its limit
(the real one cuts at about 100 s, answering Cloudflare's 524)."""

from __future__ import annotations

import asyncio
import time
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


class FakeProxy:
    """Forwards ``/proxy/{pod_id}-{port}/{tail}`` for one fake; one client session, closed
    with the app."""

    def __init__(self, fake: FakeRunPod) -> None:
        self.fake = fake
        self._session: aiohttp.ClientSession | None = None

    async def close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
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
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        url = f"http://127.0.0.1:{local}/{request.match_info.get('tail', '')}"
        if request.query_string:
            url += f"?{request.query_string}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with (
                asyncio.timeout(fake.proxy.cut_s),
                self._session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=await request.read(),
                    allow_redirects=False,
                ) as upstream,
            ):
                body = await upstream.read()
                reply = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=upstream.status, body=body, headers=reply)
        except TimeoutError:
            return web.Response(status=CUT_STATUS, text="524: a timeout occurred\n")
        except aiohttp.ClientError:
            return web.Response(status=502, text="502: the pod does not answer on that port\n")
