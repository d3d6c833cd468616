"""Faults: the app killed with SIGKILL while 10 clients post (issue 8).

The receiver and the store run in a child process (the real ReceiverServer on a real Store,
nothing else); 10 client threads post metric batches to it on 127.0.0.1 and remember every point
that got a 200. The child is killed mid-stream. The SQLite file must then pass
``PRAGMA integrity_check`` and hold every acknowledged point: a 200 means stored.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx

from app.core.store import Store
from tests.app.fake_jobs import make_job

CLIENTS = 10
BATCH = 25
MAX_BATCHES = 4000  # per client: the loop is bounded even if the kill never came
KILL_AFTER_S = 2.0
CHILD_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from app.core.ingest import Ingestor
    from app.core.receiver import ReceiverServer
    from app.core.store import Store

    async def main() -> None:
        store = Store(sys.argv[1])
        server = ReceiverServer(Ingestor(store), store, api_key="app-killed-test-key")
        port = await server.start()
        print(port, flush=True)
        await asyncio.Event().wait()  # until SIGKILL

    asyncio.run(main())
    """
)


def _post_until_refused(
    url: str, job_id: str, token: str, acked: list[int], stop: threading.Event
) -> None:
    step = 0
    with httpx.Client(timeout=5.0, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(MAX_BATCHES):
            if stop.is_set():
                return
            steps = list(range(step + 1, step + 1 + BATCH))
            body = {
                "job_id": job_id,
                "metrics": [{"step": s, "train_loss": 1.0 / s, "client": job_id} for s in steps],
            }
            try:
                answer = client.post(url, json=body)
            except httpx.HTTPError:
                return  # the app is gone
            if answer.status_code == 200:
                acked.extend(steps)
            step += BATCH


def test_an_app_killed_mid_stream_keeps_every_acknowledged_point(
    tmp_path: Path, repo_root: Path
) -> None:
    db = tmp_path / "app.sqlite3"
    with Store(db) as store:
        jobs = [make_job(store, f"client-{i}") for i in range(CLIENTS)]
    script = tmp_path / "receiver_child.py"
    script.write_text(CHILD_SCRIPT)
    child = subprocess.Popen(
        [sys.executable, str(script), str(db)],
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        url = f"http://127.0.0.1:{port}/api/training/local/metrics"
        acked: dict[str, list[int]] = {job.id: [] for job in jobs}
        stop = threading.Event()
        clients = [
            threading.Thread(
                target=_post_until_refused, args=(url, job.id, job.token, acked[job.id], stop)
            )
            for job in jobs
        ]
        for t in clients:
            t.start()
        time.sleep(KILL_AFTER_S)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        stop.set()
        for t in clients:
            t.join(30)
        assert not any(t.is_alive() for t in clients)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL

    total = sum(len(steps) for steps in acked.values())
    assert all(acked.values()), "a client never got a 200 before the kill"

    with sqlite3.connect(db) as raw:  # recovers the WAL as any reader would
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with Store(db) as store:
        stored = {job.id: {p["step"] for p in store.metrics(job.id)} for job in jobs}
    lost = {job_id: sorted(set(steps) - stored[job_id]) for job_id, steps in acked.items()}
    assert not any(lost.values()), f"acknowledged points missing after the kill: {lost}"
    print(
        f"FIGURE app killed mid-stream: {total} acknowledged points from {CLIENTS} clients, "
        f"{sum(len(s) for s in stored.values())} stored, 0 lost, integrity_check ok"
    )
