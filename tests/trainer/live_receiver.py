"""The app's own receiver, live on 127.0.0.1, for the trainer's reporting tests.

A real ``app.core.receiver.ReceiverServer`` over a real ``Store`` (SQLite in a folder of the
test's) and ``Ingestor``, on an asyncio loop in a thread of its own, with a job created in the
store with a real token (``app.core.tokens``) and the environment the app's launcher gives a
trainer (``app.core.launcher.contract_env``). So the contract is tested where it is served.

What arrived is read back where the app keeps it: ``stored_points()`` and ``alerts()`` from the
store, and ``points()``: every point of every batch the ingest path took, in order, as the
Ingestor announced them, so that a point delivered twice shows twice there (the store merges
repeats into one row).

Faults are put in front of the real receiver, never into a second implementation of it:
``stop()`` / ``start()`` on the same port (down, then up), and ``delay``: a proxy on 127.0.0.1
that forwards each request to the receiver after that many seconds (a slow receiver).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app.core.ingest import IngestEvent, Ingestor
from app.core.launcher import ReceiverAddress, contract_env
from app.core.receiver import ReceiverServer
from app.core.store import Store
from app.core.tokens import hash_token, new_api_key, new_job_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveReceiver:
    """The app's receiver for one job. Not started: call ``start()`` (a test may start it late,
    to be "down" first; the port is fixed from the beginning)."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        job_id: str = "job-1",
        token: str | None = None,
        api_key: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self._tmp = None if folder is not None else tempfile.TemporaryDirectory()
        folder = Path(folder if folder is not None else self._tmp.name)  # type: ignore[union-attr]
        self.store = Store(folder / "receiver-store.sqlite3")
        self.ingestor = Ingestor(self.store)
        self.token = token or new_job_token()
        self.api_key = api_key or new_api_key()
        self.job = self.store.create_job(
            job_id=job_id, name="reporting test", method="sft", model="builtin:tiny-llama"
        )
        self.job = self.store.update_job(job_id, token_hash=hash_token(self.token))
        self.delay = delay
        self.port = free_port()  # what trainers post to (the proxy's port when delayed)
        self._server = ReceiverServer(
            self.ingestor,
            self.store,
            port=free_port() if delay else self.port,
            api_key=self.api_key,
        )
        self._proxy: web.AppRunner | None = None
        self._batches: list[tuple[str, list[dict[str, Any]]]] = []
        self.ingestor.subscribe(self._record)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    # -- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The contract environment the app's launcher gives a trainer of this job."""
        return contract_env(
            self.job, token=self.token, receiver=ReceiverAddress(self.url, self.api_key)
        )

    def start(self) -> LiveReceiver:
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Down: nothing listens on the port until ``start()``."""
        self._call(self._stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        port = await self._server.start()
        # the same port when started again; a taken port would send the trainer elsewhere
        assert not self._server.fell_back, f"port {self._server.preferred_port} was taken"
        self._server.preferred_port = port
        if self.delay:
            self._proxy = await _start_delay_proxy(self.port, self._server.url, self.delay)

    async def _stop(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            await proxy.cleanup()
        await self._server.stop()

    # -- what arrived --------------------------------------------------------------------------

    def _record(self, event: IngestEvent) -> None:  # on the receiver's loop
        if event.kind == "metrics":
            self._batches.append((event.job_id, [dict(p) for p in event.points]))

    def points(self) -> list[dict[str, Any]]:
        """Every point the receiver took for this job, per request, in order (repeats too)."""
        return [p for job_id, batch in list(self._batches) if job_id == self.job.id for p in batch]

    def batches(self) -> int:
        """Metric requests the receiver took for this job."""
        return sum(job_id == self.job.id for job_id, _ in list(self._batches))

    def stored_points(self) -> list[dict[str, Any]]:
        """The job's points as the store holds them (one row per step)."""
        return self.store.metrics(self.job.id)

    def alerts(self, type_: str | None = None) -> list[dict[str, Any]]:
        found = self.store.alerts(self.job.id)
        return [a for a in found if type_ is None or a["type"] == type_]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()


async def _start_delay_proxy(port: int, target: str, delay: float) -> web.AppRunner:
    """Forward every request to ``target`` after ``delay`` seconds, answering what it answers."""
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.request(
            request.method, target + request.path_qs, data=body, headers=headers
        ) as resp:
            return web.Response(
                status=resp.status, body=await resp.read(), content_type=resp.content_type
            )

    async def close_session(app: web.Application) -> None:
        await session.close()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(close_session)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def main() -> None:
    """Serve in a process of its own (the bench, so that the receiver's work is not the
    trainer's) for one job with the given id, token and key: prints the URL, serves until
    stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--job-id", default="bench")
    parser.add_argument("--token", default="job-token")
    parser.add_argument("--api-key", default="api-key")
    ns = parser.parse_args()
    receiver = LiveReceiver(
        job_id=ns.job_id, token=ns.token, api_key=ns.api_key, delay=ns.delay
    ).start()
    print(receiver.url, flush=True)
    sys.stdin.read()
    receiver.close()


if __name__ == "__main__":
    main()
