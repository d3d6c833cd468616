"""A small real receiver on 127.0.0.1 for the reporting tests (aiohttp, in its own thread).

It speaks the contract of DESIGN.md §3 (paths, Bearer token, X-API-Key, 401/422) and validates
bodies with the same models as the app's receiver (trainer/events.py). It can be started late
(down, then up on the same port), answer slowly, and records every request it answered.
It stands in until the app's receiver (app/core/receiver.py) exists.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from trainer.events import ALERTS_PATH, METRICS_PATH, Alert, MetricsBatch


@dataclass
class Received:
    path: str
    status: int
    body: Any
    at: float = field(default_factory=time.monotonic)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReportingReceiver:
    def __init__(self, *, token: str = "job-token", api_key: str = "api-key", delay: float = 0.0):
        self.token = token
        self.api_key = api_key
        self.delay = delay
        self.port = free_port()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    # -- control -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, job_id: str = "job-1") -> dict[str, str]:
        """The contract environment a launcher would give the trainer for this receiver."""
        return {
            "JOB_ID": job_id,
            "JOB_TOKEN": self.token,
            "USER_ID": "tester",
            "MODEL_NAME": "tiny",
            "METRICS_API_URL": self.url + METRICS_PATH,
            "ALERT_API_URL": self.url + ALERTS_PATH,
            "INTERNAL_API_KEY": self.api_key,
        }

    def start(self) -> ReportingReceiver:
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
            self._runner = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post(METRICS_PATH, self._metrics)
        app.router.add_post(ALERTS_PATH, self._alerts)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    # -- what arrived --------------------------------------------------------------------------

    def accepted(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.status == 200]

    def points(self) -> list[dict[str, Any]]:
        return [p for r in self.accepted(METRICS_PATH) for p in r.body["metrics"]]

    def alerts(self, type_: str | None = None) -> list[dict[str, Any]]:
        found = [r.body for r in self.accepted(ALERTS_PATH)]
        return [a for a in found if type_ is None or a["type"] == type_]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    # -- handlers ----------------------------------------------------------------------------

    async def _answer(self, request: web.Request, check: Callable[[Any], Any], ok: bool) -> Any:
        if self.delay:
            await asyncio.sleep(self.delay)
        if not ok:
            status, reply = 401, {"error": "unauthorized"}
            body: Any = None
        else:
            try:
                body = await request.json()
                check(body)
                status, reply = 200, {"ok": True}
            except (ValueError, ValidationError) as err:
                status, reply, body = 422, {"error": str(err)[:300]}, None
        with self._lock:
            self.requests.append(Received(request.path, status, body))
        return web.json_response(reply, status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") == f"Bearer {self.token}"
        return await self._answer(request, MetricsBatch.model_validate, ok)  # type: ignore[no-any-return]

    async def _alerts(self, request: web.Request) -> web.Response:
        ok = request.headers.get("X-API-Key") == self.api_key
        return await self._answer(request, Alert.model_validate, ok)  # type: ignore[no-any-return]


def main() -> None:
    """Serve in a process of its own (the bench, so that the receiver's work is not the
    trainer's): prints the URL, serves until stdin closes."""
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    receiver = ReportingReceiver(delay=parser.parse_args().delay).start()
    print(receiver.url, flush=True)
    sys.stdin.read()
    receiver.close()


if __name__ == "__main__":
    main()
