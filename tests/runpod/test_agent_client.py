"""AgentClient against a real agent process: chunked, resumable, checksummed transfers, and
errors sorted into "try again later" (AgentUnreachable) and "refused" (AgentError). Network
drops are injected by a transport that wraps the real one and fails on cue; RunPod's proxy is
the fake RunPod server's real reverse proxy."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.core.runpod import bootstrap, pod_agent
from app.core.runpod.agent_client import (
    AgentClient,
    AgentError,
    AgentUnreachable,
    Artifact,
    proxy_url,
)
from app.core.runpod.client import RunPodClient
from app.core.runpod.models import PodRequest
from tests.runpod.agent_fixtures import AgentProcess, free_port, running_agent
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod


class DroppingTransport(httpx.AsyncBaseTransport):
    """The real transport, but the network drops after ``allowed`` requests of ``method``."""

    def __init__(self, method: str, allowed: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.method, self.allowed = method, allowed
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method:
            if self.allowed <= 0:
                raise httpx.ConnectError("network dropped", request=request)
            self.allowed -= 1
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def agent(tmp_path: Path) -> Any:
    with running_agent(tmp_path / "pod") as process:
        yield process


def test_an_upload_cut_by_the_network_resumes_where_it_stopped(
    agent: AgentProcess, tmp_path: Path
) -> None:
    source = tmp_path / "dataset.jsonl"
    source.write_bytes(os.urandom(250_000))

    async def scenario() -> tuple[DroppingTransport, DroppingTransport, str]:
        first = DroppingTransport("PUT", allowed=2)
        async with AgentClient(agent.url, agent.token, transport=first, chunk_bytes=40_000) as c:
            with pytest.raises(AgentUnreachable, match="unreachable"):
                await c.upload("dataset.jsonl", source)
        second = DroppingTransport("PUT", allowed=100)
        async with AgentClient(agent.url, agent.token, transport=second, chunk_bytes=40_000) as c:
            digest = await c.upload("dataset.jsonl", source)
        return first, second, digest

    first, second, digest = asyncio.run(scenario())
    assert [r.url.params["offset"] for r in first.sent if r.method == "PUT"] == ["0", "40000"]
    resumed_at = [r.url.params["offset"] for r in second.sent if r.method == "PUT"]
    assert resumed_at[0] == "80000"  # two chunks had arrived before the drop
    assert len(resumed_at) == 5  # 170,000 bytes left in 40,000-byte chunks
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (agent.home / "files/dataset.jsonl").read_bytes() == source.read_bytes()


def test_a_stale_copy_under_the_same_name_is_replaced(agent: AgentProcess, tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "config.json"
    old.write_bytes(b'{"stale": true, "padding": "' + b"x" * 500 + b'"}')
    new.write_bytes(b'{"fresh": true, "padding": "' + b"y" * 900 + b'"}')

    async def scenario() -> str:
        async with AgentClient(agent.url, agent.token, chunk_bytes=100) as client:
            first = DroppingTransport("PUT", allowed=3)
            async with AgentClient(agent.url, agent.token, transport=first, chunk_bytes=100) as c:
                with pytest.raises(AgentUnreachable):
                    await c.upload("config.json", old)  # 300 stale bytes stay on the pod
            return await client.upload("config.json", new)

    digest = asyncio.run(scenario())
    assert (agent.home / "files/config.json").read_bytes() == new.read_bytes()
    assert digest == hashlib.sha256(new.read_bytes()).hexdigest()


def test_a_download_cut_by_the_network_resumes_and_a_corrupt_one_is_refused(
    agent: AgentProcess, tmp_path: Path
) -> None:
    payload = os.urandom(230_000)
    (agent.home / "output/adapter").mkdir(parents=True)
    (agent.home / "output/adapter/weights.bin").write_bytes(payload)
    dest = tmp_path / "got/adapter/weights.bin"
    part = dest.with_name("weights.bin.part")

    async def scenario() -> tuple[list[Artifact], DroppingTransport]:
        first = DroppingTransport("GET", allowed=3)  # the listing and two chunks
        async with AgentClient(agent.url, agent.token, transport=first, chunk_bytes=50_000) as c:
            listed = await c.artifacts()
            with pytest.raises(AgentUnreachable):
                await c.download(listed[0], dest)
        assert part.stat().st_size == 100_000 and not dest.exists()
        second = DroppingTransport("GET", allowed=100)
        async with AgentClient(agent.url, agent.token, transport=second, chunk_bytes=50_000) as c:
            await c.download(listed[0], dest)
            # a .part that does not match what the pod holds: refused, dropped, fetched again
            part.write_bytes(b"\0" * 10)
            with pytest.raises(AgentError, match="checksum mismatch") as caught:
                await c.download(listed[0], dest)
            assert caught.value.error == "checksum_mismatch" and not part.exists()
            await c.download(listed[0], dest)
        return listed, second

    listed, second = asyncio.run(scenario())
    assert listed == [
        Artifact("adapter/weights.bin", len(payload), hashlib.sha256(payload).hexdigest())
    ]
    offsets = [r.url.params["offset"] for r in second.sent if r.url.path.startswith("/artifacts/")]
    assert offsets[:3] == ["100000", "150000", "200000"]  # resumed, not restarted
    assert dest.read_bytes() == payload


def test_refusals_and_network_failures_are_told_apart(agent: AgentProcess) -> None:
    async def scenario() -> None:
        async with AgentClient(agent.url, "wrong-token-" + "x" * 20) as client:
            with pytest.raises(AgentError) as refused:
                await client.health()
            assert refused.value.status == 401 and "token" in str(refused.value)
            assert "wrong-token" not in str(refused.value) + repr(client)
        async with AgentClient(f"http://127.0.0.1:{free_port()}", agent.token) as client:
            with pytest.raises(AgentUnreachable):
                await client.health()
        async with AgentClient(agent.url, agent.token) as client:
            with pytest.raises(AgentError) as bad:
                await client.start("bad id with spaces", {})
            assert bad.value.status == 422 and "execution_id" in str(bad.value)

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxy_error_page_means_unreachable(status: int) -> None:
    async def scenario() -> None:
        async def gateway(_: web.Request) -> web.Response:
            return web.Response(status=status, text="<html>proxy error</html>")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", gateway)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            async with AgentClient(url, "t" * 32) as client:
                with pytest.raises(AgentUnreachable, match=str(status)):
                    await client.events(0)
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


@pytest.mark.parametrize("slice_bytes", [pod_agent.EVENT_READ_BYTES, 150])
def test_events_of_another_job_or_torn_lines_are_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_bytes: int
) -> None:
    monkeypatch.setattr(pod_agent, "EVENT_READ_BYTES", slice_bytes)  # a long log, read in slices
    log = tmp_path / "events.jsonl"
    log.write_text(
        '{"seq": 1, "kind": "metric", "job_id": "mine", "data": {"step": 1}}\n'
        '{"seq": 2, "kind": "metric", "job_id": "other", "data": {"step": 1}}\n'
        '{"seq": 3, "kind": "metric", "data": {"step": 2}}\n'
        '{"seq": 4, "kind": "met\n'
        '{"seq": 5, "kind": "alert", "job_id": "mine", "data": {"type": "job_completed"}}\n'
        '{"seq": 6, "kind": "metric", "job_id": "mine", "da'
    )
    index = pod_agent.EventIndex(log)
    index.job_id = "mine"
    events, last = index.page(0, 100)
    assert [e["seq"] for e in events] == [1, 3, 5] and last == 5
    with log.open("a") as f:  # the half-written line is completed
        f.write('ta": {"step": 3}}\n')
    events, last = index.page(3, 100)
    assert [e["seq"] for e in events] == [5, 6] and last == 6
    assert index.page(6, 100) == ([], 6)


def test_through_the_fake_runpod_proxy_an_upload_outlives_a_proxy_outage(
    fake_runpod: FakeRunPod, tmp_path: Path
) -> None:
    """The agent started as RunPod would start it (create request's args + env) on the fake,
    reached through the fake's reverse proxy; the proxy goes away for a while mid-upload."""
    fake_runpod.extra_pod_env.update(
        {"TUNEDECK_AGENT_SKIP_INSTALL": "1", "TUNEDECK_AGENT_HOME": "agent-home"}
    )
    token = "k" * 32
    args, env = bootstrap.agent_start(
        token, port=8765, grace_s=600, idle_cap_s=600, python=sys.executable
    )
    request = PodRequest(
        name="agent-client-test",
        image=bootstrap.DEFAULT_IMAGE,
        gpu_type_id="NVIDIA RTX A5000",
        ports=["8765/http"],
        env=env,
        args=args,
    )
    data = tmp_path / "dataset.jsonl"
    data.write_bytes(os.urandom(120_000))

    async def scenario() -> str:
        async with RunPodClient(ACCOUNT_KEY, base_url=fake_runpod.url) as runpod:
            pod = await runpod.create_pod(request)
            try:
                url = proxy_url(pod.id, 8765, fake_runpod.proxy_template)
                async with AgentClient(url, token, chunk_bytes=30_000) as client:
                    for _ in range(150):  # the pod boots: unreachable until the agent listens
                        try:
                            assert (await client.health()).phase == "waiting"
                            break
                        except AgentUnreachable:
                            await asyncio.sleep(0.1)
                    fake_runpod.make_proxy_unreachable(pod.id, 1.0, status=503)
                    with pytest.raises(AgentUnreachable):
                        await client.upload("dataset.jsonl", data)
                    for _ in range(50):  # the caller retries; the upload resumes
                        try:
                            return await client.upload("dataset.jsonl", data)
                        except AgentUnreachable:
                            await asyncio.sleep(0.1)
                    raise AssertionError("the proxy never came back")
            finally:
                await runpod.terminate_pod(pod.id)

    digest = asyncio.run(scenario())
    assert digest == hashlib.sha256(data.read_bytes()).hexdigest()
