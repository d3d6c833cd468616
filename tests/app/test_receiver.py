"""The receiver, live on 127.0.0.1: the contract's payloads, every error status, concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fake_jobs import API_KEY, TokenJob, make_job

from app.core.ingest import Ingestor
from app.core.receiver import MAX_BODY_BYTES, RECENT_JOB_S, ReceiverServer
from app.core.receiver_openapi import OPENAPI_FILE, render
from app.core.store import Store
from trainer.events import ALERT_TYPES, ALERTS_PATH, METRICS_PATH

KEY = {"X-API-Key": API_KEY}


@contextlib.asynccontextmanager
async def serve(store: Store, port: int = 0) -> AsyncIterator[ReceiverServer]:
    server = ReceiverServer(Ingestor(store), store, port=port, api_key=API_KEY)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(
        url, data=data, headers={"Content-Type": "application/json", **headers}
    ) as resp:
        return resp.status, await resp.json()


CONTRACT_POINT = {
    "step": 10,
    "epoch": 0.5,
    "train_loss": 1.234,
    "eval_loss": 1.5,
    "learning_rate": 0.0002,
    "grad_norm": 0.8,
    "samples_per_second": 12.5,
    "tokens_per_second": 3200.0,
    "gpu_memory_allocated_gb": 5.1,
    "gpu_memory_reserved_gb": 6.0,
    "gpu_utilization_percent": 97.0,
    "perplexity": 3.43,
    "timestamp": "2026-11-28T12:00:00.000000Z",
}


def full_alert(kind: str, job_id: str) -> dict[str, Any]:
    return {
        "type": kind,
        "job_id": job_id,
        "user_id": "local",
        "model_name": "org/model",
        "status": "running",
        "progress": 0.5,
        "current_step": 10,
        "total_steps": 20,
        "loss": 1.2,
        "duration": 1500,
        "error_message": "something",
        "error_type": "RuntimeError",
    }


def test_contract_payloads_are_accepted(store: Store, job: TokenJob) -> None:
    async def scenario() -> None:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            single = {"job_id": job.id, "metrics": [CONTRACT_POINT]}
            assert (await post(s, server.metrics_url, single, job.bearer))[0] == 200
            batch = {
                "job_id": job.id,
                "metrics": [{"step": i, "train_loss": 1.0 / i, "my_extra": "x"} for i in (1, 2, 3)],
            }
            status, reply = await post(s, server.metrics_url, batch, job.bearer)
            assert status == 200 and reply["stored"] == 3
            for kind in ALERT_TYPES:
                status, reply = await post(s, server.alerts_url, full_alert(kind, job.id), KEY)
                assert status == 200, (kind, reply)
            async with s.get(f"{server.url}/api/jobs/{job.id}/metrics", headers=KEY) as resp:
                stored = (await resp.json())["metrics"]
            async with s.get(f"{server.url}/api/jobs/{job.id}/alerts", headers=job.bearer) as r:
                alerts = (await r.json())["alerts"]
        assert [p["step"] for p in stored] == [1, 2, 3, 10]
        assert stored[-1] == CONTRACT_POINT
        assert stored[0]["my_extra"] == "x"  # unknown fields are kept
        assert [a["type"] for a in alerts] == list(ALERT_TYPES)
        # job_completed came before job_failed in ALERT_TYPES: the first final status stays
        assert store.require_job(job.id).status == "completed"

    asyncio.run(scenario())


def test_a_step_sent_twice_is_one_point_filled_in(store: Store, job: TokenJob) -> None:
    async def scenario() -> None:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            await post(
                s,
                server.metrics_url,
                {"job_id": job.id, "metrics": [{"step": 5, "train_loss": 2.0}]},
                job.bearer,
            )
            status, reply = await post(
                s,
                server.metrics_url,
                {"job_id": job.id, "metrics": [{"step": 5, "eval_loss": 2.2, "train_loss": None}]},
                job.bearer,
            )
        assert status == 200 and reply == {"ok": True, "job_id": job.id, "stored": 0, "merged": 1}
        assert store.metrics(job.id) == [{"step": 5, "train_loss": 2.0, "eval_loss": 2.2}]

    asyncio.run(scenario())


def test_every_error_status(store: Store, job: TokenJob) -> None:
    other = make_job(store, "other")
    old = make_job(store, "old")
    store.set_status(old.id, "completed")
    store.update_job(old.id, ended_at=time.time() - RECENT_JOB_S - 5)
    ok_body = {"job_id": job.id, "metrics": [{"step": 1}]}

    async def scenario() -> list[tuple[str, int, dict[str, Any]]]:
        out = []
        async with serve(store) as server, aiohttp.ClientSession() as s:
            m, a = server.metrics_url, server.alerts_url

            async def check(name: str, url: str, body: Any, headers: dict[str, str]) -> None:
                status, reply = await post(s, url, body, headers)
                out.append((name, status, reply))

            await check("no token", m, ok_body, {})
            await check("not bearer", m, ok_body, {"Authorization": f"Basic {job.token}"})
            await check("wrong token", m, ok_body, {"Authorization": "Bearer nope"})
            await check("another job's token", m, ok_body, other.bearer)
            await check("finished long ago", m, {**ok_body, "job_id": old.id}, old.bearer)
            await check("no key", a, full_alert("job_started", job.id), {})
            await check("wrong key", a, full_alert("job_started", job.id), {"X-API-Key": "x"})
            await check("unknown job metrics", m, {**ok_body, "job_id": "ghost"}, job.bearer)
            await check("bad body, wrong token", m, b"{not json", {"Authorization": "Bearer x"})
            await check("bad alert, wrong key", a, {"type": "party"}, {"X-API-Key": "x"})
            await check("unknown job alert", a, full_alert("job_started", "ghost"), KEY)
            big = b'{"job_id": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
            await check("too big", m, big, job.bearer)
            await check("not json", m, b"{not json", job.bearer)
            await check("not an object", m, b"[1, 2]", job.bearer)
            await check("bad step", m, {"job_id": job.id, "metrics": [{"step": "ten"}]}, job.bearer)
            await check("no points", m, {"job_id": job.id, "metrics": []}, job.bearer)
            await check("no job id", m, {"metrics": [{"step": 1}]}, job.bearer)
            await check("bad type", a, {**full_alert("job_started", job.id), "type": "party"}, KEY)
            await check(
                "bad duration", a, {**full_alert("gpu_oom", job.id), "duration": "long"}, KEY
            )

            # chunked upload without a Content-Length, over the limit
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(MAX_BODY_BYTES // 65536 + 2):
                    yield b" " * 65536

            async with s.post(m, data=chunks(), headers=job.bearer) as resp:
                out.append(("too big, chunked", resp.status, await resp.json()))
        return out

    results = {name: (status, reply) for name, status, reply in asyncio.run(scenario())}
    expected = {
        "no token": 401,
        "not bearer": 401,
        "wrong token": 401,
        "another job's token": 401,
        "finished long ago": 410,
        "no key": 401,
        "wrong key": 401,
        "unknown job metrics": 401,
        "bad body, wrong token": 401,
        "bad alert, wrong key": 401,
        "unknown job alert": 404,
        "too big": 413,
        "too big, chunked": 413,
        "not json": 422,
        "not an object": 422,
        "bad step": 422,
        "no points": 422,
        "no job id": 422,
        "bad type": 422,
        "bad duration": 422,
    }
    assert {k: v[0] for k, v in results.items()} == expected
    # a 401 never says which part was wrong
    assert len({json.dumps(v[1]) for v in results.values() if v[0] == 401}) == 1
    assert results["bad step"][1]["detail"].startswith("metrics.0.step:")
    assert results["no job id"][1]["detail"].startswith("job_id: Field required")
    assert "type:" in results["bad type"][1]["detail"]
    assert results["bad duration"][1]["detail"].startswith("duration:")
    assert results["finished long ago"][1]["error"] == "job_closed"
    assert old.id in results["finished long ago"][1]["detail"]
    assert store.metric_count(job.id) == 0 and store.alerts() == []


def test_odd_but_valid_values_are_stored_not_a_server_error(store: Store, job: TokenJob) -> None:
    """Found by the generated-request test: integers past 64 bits, characters past the BMP."""
    alert = {
        "type": "loss_nan",
        "job_id": job.id,
        "total_steps": -(10**22),
        "current_step": 10**30,
        "error_type": "\ud903\udce5",
    }
    point = {"step": 1, "timestamp": "\ud903\udce5", "huge_extra": 10**40}

    async def scenario() -> tuple[int, int, int]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            a, _ = await post(s, server.alerts_url, alert, KEY)
            m, _ = await post(
                s, server.metrics_url, {"job_id": job.id, "metrics": [point]}, job.bearer
            )
            ghost, _ = await post(s, server.alerts_url, {**alert, "job_id": "gh\u00f6st"}, KEY)
            return a, m, ghost

    assert asyncio.run(scenario()) == (200, 200, 404)
    assert store.require_job(job.id).total_steps is None  # an impossible figure is not used
    assert store.metrics(job.id)[0]["huge_extra"] == 10**40


def test_fifty_clients_lose_nothing_and_duplicate_nothing(store: Store) -> None:
    jobs = [make_job(store, f"job{i}") for i in range(5)]
    clients, points_each, batch = 50, 200, 20

    async def client(n: int, session: aiohttp.ClientSession, url: str) -> int:
        job = jobs[n % len(jobs)]
        base = (n // len(jobs)) * points_each  # each client owns its own steps of its job
        steps = list(range(base, base + points_each))
        batches = [steps[i : i + batch] for i in range(0, len(steps), batch)]
        batches.append(batches[0])  # a resend, as after a lost response
        ok = 0
        for chunk in batches:
            body = {"job_id": job.id, "metrics": [{"step": s, "train_loss": s / 7} for s in chunk]}
            status, _ = await post(session, url, body, job.bearer)
            ok += status == 200
        return ok

    async def scenario() -> list[int]:
        async with serve(store) as server:
            connector = aiohttp.TCPConnector(limit=clients)
            async with aiohttp.ClientSession(connector=connector) as session:
                return await asyncio.gather(
                    *(client(n, session, server.metrics_url) for n in range(clients))
                )

    started = time.monotonic()
    assert asyncio.run(scenario()) == [points_each // batch + 1] * clients
    per_job = clients // len(jobs) * points_each
    for job in jobs:
        rows = store.metrics(job.id)
        assert len(rows) == per_job
        assert [r["step"] for r in rows] == list(range(per_job))
        assert all(r["train_loss"] == pytest.approx(r["step"] / 7) for r in rows)
    assert time.monotonic() - started < 60


def test_served_openapi_is_the_committed_file_and_current(store: Store) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            async with s.get(f"{server.url}/openapi.json") as resp:
                doc = await resp.json()
            async with s.get(f"{server.url}/health") as resp:
                health = await resp.json()
        return doc, health

    doc, health = asyncio.run(scenario())
    committed = OPENAPI_FILE.read_text(encoding="utf-8")
    assert doc == json.loads(committed)
    assert committed == render(), "regenerate with: python -m app.core.receiver_openapi"
    assert set(doc["paths"]) >= {METRICS_PATH, ALERTS_PATH, "/health"}
    assert health["status"] == "ok"


def test_a_taken_port_falls_back_to_a_free_one(store: Store) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]

        async def scenario() -> tuple[int, bool]:
            async with serve(store, port=taken) as server:
                async with aiohttp.ClientSession() as s, s.get(f"{server.url}/health") as r:
                    assert r.status == 200
                return server.port or 0, server.fell_back

        port, fell_back = asyncio.run(scenario())
    assert port != taken and fell_back


def test_another_bind_address_is_warned_about(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # 192.0.2.1 (TEST-NET-1) is not on this machine: the bind fails, after the warning
    server = ReceiverServer(Ingestor(store), store, host="192.0.2.1", api_key=API_KEY)
    with caplog.at_level(logging.WARNING), pytest.raises(OSError):
        asyncio.run(server.start())
    assert "other machines can reach it" in caplog.text
    assert not server.running


def test_nan_nested_in_an_extra_is_refused_by_name_and_never_served(
    store: Store, job: TokenJob
) -> None:
    """Issue 8, defect 1: a nested NaN was stored as text; the step again gave a 500."""
    raw = b'{"job_id": "%s", "metrics": [{"step": 3, "x": {"a": NaN}}]}' % job.id.encode()

    async def scenario() -> tuple[list[tuple[int, dict[str, Any]]], str]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            answers = [await post(s, server.metrics_url, raw, job.bearer) for _ in range(2)]
            ok = {"job_id": job.id, "metrics": [{"step": 3, "x": {"a": 1.5}}]}
            answers.append(await post(s, server.metrics_url, ok, job.bearer))
            async with s.get(f"{server.url}/api/jobs/{job.id}/metrics", headers=KEY) as resp:
                text = await resp.text()
        return answers, text

    answers, served = asyncio.run(scenario())
    assert [status for status, _ in answers] == [422, 422, 200]
    assert answers[0][1]["detail"].startswith("metrics.0.x.a: NaN/Infinity is not JSON")
    assert json.loads(served)["metrics"] == [{"step": 3, "x": {"a": 1.5}}]


def test_a_named_field_that_is_nan_is_refused_by_name(store: Store, job: TokenJob) -> None:
    raw = b'{"job_id": "%s", "metrics": [{"step": 1, "train_loss": Infinity}]}' % job.id.encode()

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            return await post(s, server.metrics_url, raw, job.bearer)

    status, reply = asyncio.run(scenario())
    assert status == 422 and reply["detail"].startswith("metrics.0.train_loss: NaN/Infinity")
    assert store.metric_count(job.id) == 0


def test_a_jobs_own_token_posts_its_alerts_and_no_other_jobs(store: Store, job: TokenJob) -> None:
    """Issue 8, defect 7 (decision 2): a reattached run without the session's API key."""
    other = make_job(store, "other")

    async def scenario() -> list[int]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            a = server.alerts_url
            own = await post(s, a, full_alert("job_started", job.id), job.bearer)
            foreign = await post(s, a, full_alert("job_failed", other.id), job.bearer)
            ghost = await post(s, a, full_alert("job_failed", "ghost"), job.bearer)
            keyed = await post(s, a, full_alert("job_started", other.id), KEY)
            return [own[0], foreign[0], ghost[0], keyed[0]]

    assert asyncio.run(scenario()) == [200, 401, 401, 200]
    assert store.require_job(job.id).status == "running"
    assert store.require_job(other.id).status == "running"  # started by the key, not failed
    assert [a["type"] for a in store.alerts(other.id)] == ["job_started"]


def test_an_unknown_job_and_a_wrong_token_answer_alike(store: Store, job: TokenJob) -> None:
    """Issue 8, defect 9: any bearer string learned which job ids exist."""
    wrong = {"Authorization": "Bearer not-the-token"}

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            m = server.metrics_url
            point = [{"step": 1}]
            return [
                await post(s, m, {"job_id": job.id, "metrics": point}, wrong),
                await post(s, m, {"job_id": "ghost", "metrics": point}, wrong),
                await post(s, m, {"job_id": "ghost", "metrics": point}, job.bearer),
                await post(s, m, {"job_id": "ghost", "metrics": "bad"}, wrong),
            ]

    answers = asyncio.run(scenario())
    assert len({json.dumps(a) for a in answers}) == 1 and answers[0][0] == 401


def test_alerts_as_contract_trainers_send_them(store: Store, job: TokenJob) -> None:
    """Issue 8, defect 16: a null user_id, a fractional duration, string extras."""
    alert = {
        **full_alert("loss_spike", job.id),
        "user_id": None,
        "duration": 1500.25,
        "loss_trend": "rising",
    }

    async def scenario() -> tuple[int, dict[str, Any]]:
        async with serve(store) as server, aiohttp.ClientSession() as s:
            return await post(s, server.alerts_url, alert, KEY)

    status, reply = asyncio.run(scenario())
    assert status == 200, reply
    [stored] = store.alerts(job.id)
    assert (stored["user_id"], stored["duration"], stored["loss_trend"]) == (
        "local",
        1500.25,
        "rising",
    )
