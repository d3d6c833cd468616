"""The RunPod client against the fake RunPod server: every call, every error kind, retries."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from app.core.runpod.client import RunPodClient, _retry_after
from app.core.runpod.errors import (
    RunPodAuthError,
    RunPodNoStock,
    RunPodNotFound,
    RunPodQuota,
    RunPodRateLimited,
    RunPodRejected,
    RunPodUnavailable,
)
from app.core.runpod.models import PodRequest
from tests.runpod.fake_runpod import FakeRunPod

T = TypeVar("T")
GPU = "NVIDIA GeForce RTX 4090"


class Sleeps:
    """An injected sleep: records what the client waited, waits nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run(fake: FakeRunPod, scenario: Callable[[RunPodClient], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with RunPodClient(fake.account_key, base_url=fake.url, **options) as client:
            return await scenario(client)

    return asyncio.run(main())


def request(name: str = "tunedeck-test", **changes: Any) -> PodRequest:
    fields: dict[str, Any] = {
        "name": name,
        "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
        "gpu_type_id": GPU,
        "ports": ("8765/http",),
        "env": {"TUNEDECK_AGENT_TOKEN": "agent-token"},
    }
    return PodRequest(**{**fields, **changes})


def test_pod_lifecycle_create_get_find_action_logs_terminate(fake_runpod: FakeRunPod) -> None:
    async def scenario(client: RunPodClient) -> None:
        pod = await client.create_pod(request(args="echo hello from the pod; sleep 30"))
        assert pod.name == "tunedeck-test"
        assert (pod.gpu_type_id, pod.gpu_count, pod.cloud) == (GPU, 1, "SECURE")
        assert pod.env_keys == ("TUNEDECK_AGENT_TOKEN",)
        assert "env" not in pod.raw  # env values may be secrets; they are not kept
        got = await client.get_pod(pod.id)
        assert got.status == "RUNNING"
        assert got.cost_per_hour == pytest.approx(0.69)  # the table's secure price, 1 GPU
        assert [p.id for p in await client.find_pods(name="tunedeck-test")] == [pod.id]
        assert await client.find_pods(name="someone-else") == []
        for _ in range(50):
            if "hello from the pod" in await client.pod_logs(pod.id):
                break
            await asyncio.sleep(0.05)
        assert "hello from the pod" in await client.pod_logs(pod.id)

        stopped = await client.pod_action(pod.id, "stop")
        assert stopped is not None and stopped.status == "EXITED"
        assert stopped.cost_per_hour == 0.0
        assert not fake_runpod.alive_processes()
        started = await client.pod_action(pod.id, "start")
        assert started is not None and started.status == "RUNNING"
        billing = await client.pod_billing(pod.id)
        assert set(billing.by_pod) == {pod.id}
        assert billing.total_usd >= 0.0

        await client.terminate_pod(pod.id)
        with pytest.raises(RunPodNotFound):
            await client.get_pod(pod.id)
        assert await client.find_pods() == []
        await client.terminate_pod(pod.id)  # gone already: no error

    run(fake_runpod, scenario)
    assert fake_runpod.pod_status(next(iter(fake_runpod.pods))) == "TERMINATED"


def test_the_create_body_is_exactly_what_the_schema_allows(fake_runpod: FakeRunPod) -> None:
    async def scenario(client: RunPodClient) -> str:
        pod = await client.create_pod(
            request(gpu_count=2, cloud="COMMUNITY", volume_id="vol_abc", args=["sleep", "5"])
        )
        await client.terminate_pod(pod.id)
        return pod.id

    run(fake_runpod, scenario)
    create = fake_runpod.requests_to("/v2/pods")[0]
    assert create.method == "POST"
    assert create.headers["Content-Type"] == "application/json"
    # the fixture fails the test on any schema violation; this says the body was read at all
    assert b'"mounts": {"network": [{"volumeId": "vol_abc", "path": "/workspace"}]}' in create.body
    assert b'"args": "sleep 5"' in create.body


def test_terminate_pod_action_answers_nothing(fake_runpod: FakeRunPod) -> None:
    async def scenario(client: RunPodClient) -> Any:
        pod = await client.create_pod(request())
        return await client.pod_action(pod.id, "terminate")

    assert run(fake_runpod, scenario) is None
    assert fake_runpod.live_pods() == []


def test_gpu_types_carry_price_memory_stock_and_max_count(fake_runpod: FakeRunPod) -> None:
    fake_runpod.set_stock("NVIDIA H200", "NONE")
    gpus = {gpu.id: gpu for gpu in run(fake_runpod, lambda c: c.gpu_types())}
    rtx = gpus[GPU]
    assert (rtx.memory_gb, rtx.secure_price, rtx.community_price) == (24, 0.69, 0.34)
    assert rtx.stock == "HIGH" and rtx.in_stock and rtx.max_count == 8
    assert gpus["NVIDIA H200"].stock == "NONE" and not gpus["NVIDIA H200"].in_stock
    assert gpus["NVIDIA H200"].community_price is None  # not offered in the community cloud
    query = fake_runpod.requests_to("/v2/catalog/gpus")[0].query
    assert "include=AVAILABILITY" in query and "product=POD" in query


def test_a_bad_key_says_to_check_it_in_settings(fake_runpod: FakeRunPod) -> None:
    async def main() -> None:
        async with RunPodClient("rpa_WRONGKEY", base_url=fake_runpod.url) as client:
            await client.find_pods()

    with pytest.raises(RunPodAuthError) as caught:
        asyncio.run(main())
    assert caught.value.status == 401
    assert caught.value.message == (
        "RunPod refused the API key: check it in Settings → Credentials."
    )
    assert "rpa_WRONGKEY" not in str(caught.value)


def test_no_stock_names_types_in_stock_at_a_similar_price(fake_runpod: FakeRunPod) -> None:
    fake_runpod.set_stock(GPU, "NONE")
    fake_runpod.set_stock("NVIDIA GeForce RTX 5090", "NONE")

    with pytest.raises(RunPodNoStock) as caught:
        run(fake_runpod, lambda c: c.create_pod(request()))
    error = caught.value
    assert error.message == "RunPod has no RTX 4090 free in the secure cloud right now."
    names = [gpu.id for gpu in error.alternatives]
    assert GPU not in names and "NVIDIA GeForce RTX 5090" not in names
    assert len(names) == 3
    prices = [gpu.secure_price or 0 for gpu in error.alternatives]
    # closest to the RTX 4090's $0.69/h first (RTX 6000 Ada $0.77, A100 … further away)
    assert all(abs(p - 0.69) <= 0.2 for p in prices)
    assert prices == sorted(prices, key=lambda p: abs(p - 0.69))
    assert error.alternatives[0].label() in error.hint
    assert error.hint.startswith("In stock at a similar price: ")
    assert fake_runpod.live_pods() == []


def test_starting_a_stopped_pod_without_free_gpus_is_no_stock(fake_runpod: FakeRunPod) -> None:
    async def scenario(client: RunPodClient) -> None:
        pod = await client.create_pod(request())
        await client.pod_action(pod.id, "stop")
        fake_runpod.set_stock(GPU, "NONE")
        try:
            with pytest.raises(RunPodNoStock) as caught:
                await client.pod_action(pod.id, "start")
            assert caught.value.message.startswith(
                f"RunPod has no free GPU of that type to start pod {pod.id} right now"
            )
        finally:
            await client.terminate_pod(pod.id)

    run(fake_runpod, scenario)


def test_quota_and_balance_refusals(fake_runpod: FakeRunPod) -> None:
    fake_runpod.refuse_next_create(402, "insufficient balance to deploy this pod")
    with pytest.raises(RunPodQuota) as caught:
        run(fake_runpod, lambda c: c.create_pod(request()))
    assert "balance" in caught.value.message and "Billing" in caught.value.hint

    fake_runpod.refuse_next_create(400, "GPU quota exceeded for this account")
    with pytest.raises(RunPodQuota):
        run(fake_runpod, lambda c: c.create_pod(request()))


def test_a_refused_field_is_named(fake_runpod: FakeRunPod) -> None:
    with pytest.raises(RunPodRejected) as caught:
        run(fake_runpod, lambda c: c.create_pod(request(gpu_count=9)))
    error = caught.value
    assert error.fields == ("gpu.count",)
    assert "`gpu.count`" in error.message and "at most 8" in error.message

    with pytest.raises(RunPodRejected) as caught:
        run(fake_runpod, lambda c: c.create_pod(request(gpu_type_id="NVIDIA Imaginary 9000")))
    assert caught.value.fields == ("gpu.id",)


def test_a_body_the_schema_rejects_is_refused_and_recorded(fake_runpod: FakeRunPod) -> None:
    async def scenario(client: RunPodClient) -> None:
        await client._call(  # a body no PodRequest can produce: bypass to_json
            "POST",
            "/v2/pods",
            "create pod x",
            safe=False,
            body={"name": "x", "image": "i", "gpu": {"id": GPU}, "dockerStartCmd": ["x"]},
        )

    with pytest.raises(RunPodRejected) as caught:
        run(fake_runpod, scenario)
    assert caught.value.status == 422
    assert "dockerStartCmd" in str(caught.value)
    assert any("dockerStartCmd" in v for v in fake_runpod.violations)
    fake_runpod.violations.clear()  # seen; the fixture would fail the test on it otherwise


def test_rate_limit_waits_for_retry_after_then_succeeds(fake_runpod: FakeRunPod) -> None:
    sleeps = Sleeps()
    fake_runpod.rate_limit_next(times=2, retry_after_s=7)
    assert run(fake_runpod, lambda c: c.find_pods(), sleep=sleeps) == []
    assert sleeps.waits == [7.0, 7.0]


def test_rate_limit_that_lasts_is_reported_with_the_wait(fake_runpod: FakeRunPod) -> None:
    sleeps = Sleeps()
    fake_runpod.rate_limit_next(times=10, retry_after_s=3)
    with pytest.raises(RunPodRateLimited) as caught:
        run(fake_runpod, lambda c: c.find_pods(), sleep=sleeps, max_retries=2)
    assert caught.value.retry_after_s == 3.0
    assert sleeps.waits == [3.0, 3.0]
    assert "Try again in 3 s" in str(caught.value)


def test_retry_after_as_an_http_date_is_honoured(fake_runpod: FakeRunPod) -> None:
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    response = httpx.Response(429, headers={"Retry-After": soon})
    assert 25 <= _retry_after(response) <= 31
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) == 1.0
    assert _retry_after(httpx.Response(429)) == 1.0


def test_a_retry_after_past_the_cap_is_not_waited_out(fake_runpod: FakeRunPod) -> None:
    sleeps = Sleeps()
    fake_runpod.rate_limit_next(times=1, retry_after_s=3600)
    with pytest.raises(RunPodRateLimited) as caught:
        run(fake_runpod, lambda c: c.find_pods(), sleep=sleeps, max_retry_after_s=60)
    assert sleeps.waits == []
    assert caught.value.retry_after_s == 3600


def test_a_create_is_retried_after_429_because_runpod_did_nothing(
    fake_runpod: FakeRunPod,
) -> None:
    sleeps = Sleeps()
    fake_runpod.rate_limit_next(times=1, retry_after_s=2)

    async def scenario(client: RunPodClient) -> None:
        pod = await client.create_pod(request())
        await client.terminate_pod(pod.id)

    run(fake_runpod, scenario, sleep=sleeps)
    assert sleeps.waits == [2.0]
    assert len(fake_runpod.pods) == 1


def test_server_errors_on_safe_calls_are_retried_with_backoff(fake_runpod: FakeRunPod) -> None:
    sleeps = Sleeps()
    fake_runpod.fail_next(times=3, status=503)
    assert run(fake_runpod, lambda c: c.find_pods(), sleep=sleeps) == []
    assert sleeps.waits == [0.5, 1.0, 2.0]


def test_server_errors_past_the_retries_are_unavailable(fake_runpod: FakeRunPod) -> None:
    sleeps = Sleeps()
    fake_runpod.fail_next(times=10, status=502)
    with pytest.raises(RunPodUnavailable) as caught:
        run(fake_runpod, lambda c: c.gpu_types(), sleep=sleeps, max_retries=2)
    assert caught.value.status == 502 and not caught.value.maybe_done
    assert len(sleeps.waits) == 2


def test_a_create_answering_500_is_not_retried_and_the_pod_is_found_by_name(
    fake_runpod: FakeRunPod,
) -> None:
    sleeps = Sleeps()
    fake_runpod.fail_next_create_after_creating()

    async def scenario(client: RunPodClient) -> None:
        with pytest.raises(RunPodUnavailable) as caught:
            await client.create_pod(request("tunedeck-job-42"))
        assert caught.value.maybe_done  # the caller must look the pod up before trying again
        found = await client.find_pods(name="tunedeck-job-42")
        assert len(found) == 1 and found[0].status == "RUNNING"
        await client.terminate_pod(found[0].id)
        assert await client.find_pods(name="tunedeck-job-42") == []

    run(fake_runpod, scenario, sleep=sleeps)
    assert sleeps.waits == []  # no second create
    assert [r.method for r in fake_runpod.requests_to("/v2/pods")].count("POST") == 1


def test_a_timeout_is_retried_on_reads_but_never_on_create(fake_runpod: FakeRunPod) -> None:
    sleeps = Sleeps()
    fake_runpod.delay_next(1.0, times=1)
    assert run(fake_runpod, lambda c: c.find_pods(), sleep=sleeps, timeout_s=0.3) == []
    assert sleeps.waits == [0.5]

    sleeps.waits.clear()
    fake_runpod.delay_next(1.0, times=1)
    with pytest.raises(RunPodUnavailable) as caught:
        run(fake_runpod, lambda c: c.create_pod(request("slow")), sleep=sleeps, timeout_s=0.3)
    assert caught.value.maybe_done
    assert "no answer within 0.3 s" in caught.value.message
    assert sleeps.waits == []

    async def look_up_and_terminate(client: RunPodClient) -> None:
        # RunPod made the pod although the client gave up: the name finds it
        (found,) = await client.find_pods(name="slow")
        await client.terminate_pod(found.id)

    run(fake_runpod, look_up_and_terminate)


def test_nothing_listening_is_unavailable_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()

    async def main() -> None:
        async with RunPodClient(
            "rpa_x", base_url=f"http://127.0.0.1:{port}", sleep=sleeps, max_retries=2
        ) as client:
            await client.create_pod(request())

    with pytest.raises(RunPodUnavailable) as caught:
        asyncio.run(main())
    # nothing reached RunPod, so even a create may be repeated, and nothing can exist
    assert len(sleeps.waits) == 2 and not caught.value.maybe_done
    assert caught.value.message.startswith("Could not reach RunPod")


def test_the_key_never_appears_in_logs(
    fake_runpod: FakeRunPod, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    fake_runpod.rate_limit_next(times=1)
    caplog.set_level(logging.DEBUG)

    async def scenario(client: RunPodClient) -> None:
        pod = await client.create_pod(request())
        fake_runpod.fail_next(times=1)  # a retried read logs its retry
        await client.get_pod(pod.id)
        await client.terminate_pod(pod.id)
        assert fake_runpod.account_key not in repr(client)

    run(fake_runpod, scenario, sleep=sleeps)
    with pytest.raises(RunPodAuthError):
        asyncio.run(_list_with("rpa_SECRETWRONGKEY", fake_runpod.url))
    assert caplog.records  # httpx/httpcore and the client did log at DEBUG/INFO
    assert fake_runpod.account_key not in caplog.text
    assert "rpa_SECRETWRONGKEY" not in caplog.text
    authorised = [r for r in fake_runpod.requests if r.path.startswith("/v2/")]
    assert all(r.headers["Authorization"].startswith("Bearer rpa_") for r in authorised)


async def _list_with(key: str, url: str) -> None:
    async with RunPodClient(key, base_url=url) as client:
        await client.find_pods()


def test_an_empty_key_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="key is needed"):
        RunPodClient("  ")
