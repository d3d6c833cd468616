"""Receiver throughput: metric points stored per second and p99 request latency.

The receiver (app.core.receiver, storing into SQLite through the one ingest path) runs in its own
process, next to a baseline: the same aiohttp server and client with a handler that reads the
body and answers without validating or storing anything. Both are measured in this one run with
batches of 1 and of 50 points per request, from concurrent keep-alive clients in this process.
The ratio "stored / baseline" is what validation plus SQLite cost.

Target: batches of 50 reach at least 20,000 points per second into SQLite.

Run: ``.venv/bin/python bench/receiver_throughput.py [--clients 16 --seconds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_POINTS_PER_S = 20_000


# ------------------------------------------------------------------ servers (own processes)


def _serve_store(conn: Any, folder: str) -> None:
    from app.core.ingest import Ingestor
    from app.core.receiver import ReceiverServer
    from app.core.store import Store
    from app.core.tokens import hash_token, new_api_key, new_job_token

    async def main() -> None:
        store = Store(Path(folder) / "bench.sqlite3")
        job = store.create_job(name="bench", method="sft", model="m")
        token = new_job_token()
        store.update_job(job.id, token_hash=hash_token(token))
        server = ReceiverServer(Ingestor(store), store, api_key=new_api_key())
        await server.start()
        conn.send((server.metrics_url, job.id, token))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        conn.send(store.metric_count(job.id))
        await server.stop()

    asyncio.run(main())


def _serve_baseline(conn: Any, folder: str) -> None:
    from aiohttp import web

    from trainer.events import METRICS_PATH

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    async def main() -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post(METRICS_PATH, handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=512)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        conn.send((f"http://127.0.0.1:{port}{METRICS_PATH}", "baseline", "x"))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send(None)
        await runner.cleanup()

    asyncio.run(main())


# ------------------------------------------------------------------------------- clients


@dataclass
class Result:
    server: str
    batch: int
    requests: int
    points: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds

    @property
    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1000


async def _load(
    url: str, job_id: str, token: str, batch: int, clients: int, seconds: float
) -> tuple[int, int, float, list[float]]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    next_step = 0
    stop_at = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_step, errors
        while time.perf_counter() < stop_at:
            first, next_step = next_step, next_step + batch
            points = [
                {"step": s, "train_loss": 1.0 / (s + 1), "learning_rate": 2e-4, "epoch": s / 1e6}
                for s in range(first, first + batch)
            ]
            body = json.dumps({"job_id": job_id, "metrics": points}).encode()
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - began)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return len(latencies), errors, elapsed, latencies


def measure(kind: str, batch: int, clients: int, seconds: float) -> tuple[Result, int | None]:
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    target = _serve_store if kind == "stored" else _serve_baseline
    with tempfile.TemporaryDirectory() as folder:
        proc = ctx.Process(target=target, args=(there, folder), daemon=True)
        proc.start()
        if not here.poll(60):
            raise RuntimeError(f"the {kind} server did not start")
        url, job_id, token = here.recv()
        requests, errors, elapsed, latencies = asyncio.run(
            _load(url, job_id, token, batch, clients, seconds)
        )
        here.send("stop")
        stored = here.recv() if here.poll(30) else None
        proc.join(30)
    result = Result(kind, batch, requests, requests * batch, elapsed, latencies, errors)
    return result, stored


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients")
    p.add_argument("--seconds", type=float, default=3.0, help="load time per measurement")
    args = p.parse_args()

    rows: dict[tuple[str, int], Result] = {}
    ok = True
    for batch in (1, 50):
        for kind in ("baseline", "stored"):
            result, stored = measure(kind, batch, args.clients, args.seconds)
            rows[(kind, batch)] = result
            if kind == "stored" and stored != result.points - result.errors * batch:
                print(f"!! stored {stored} points, sent {result.points}", file=sys.stderr)
                ok = False
            if result.errors:
                print(f"!! {result.errors} requests failed ({kind}, batch {batch})")
                ok = False

    print(f"receiver throughput, {args.clients} clients, {args.seconds:.0f} s each, 127.0.0.1")
    print(f"{'batch':>5}  {'server':<9} {'requests/s':>10} {'points/s':>10} {'p99 ms':>8}")
    for batch in (1, 50):
        for kind in ("baseline", "stored"):
            r = rows[(kind, batch)]
            print(
                f"{batch:>5}  {kind:<9} {r.requests / r.seconds:>10.0f} "
                f"{r.points_per_s:>10.0f} {r.p99_ms:>8.1f}"
            )
        ratio = rows[("stored", batch)].points_per_s / rows[("baseline", batch)].points_per_s
        print(f"{batch:>5}  stored/baseline points per second: {ratio:.2f}")
    reached = rows[("stored", 50)].points_per_s
    verdict = "met" if reached >= TARGET_POINTS_PER_S else "NOT met"
    print(
        f"target: batches of 50 >= {TARGET_POINTS_PER_S} points/s into SQLite: {verdict} "
        f"({reached:.0f})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
