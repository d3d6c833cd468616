"""The "Test" buttons' checks against fake RunPod and Hugging Face servers on 127.0.0.1.

RunPod: the suite's fake RunPod (tests/runpod/fake_runpod.py), which checks every request and
answer against the vendored published schema. Hugging Face: a small stand-in answering by token."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.core import credential_checks
from app.core.credential_checks import check_hf_token, check_runpod_key
from app.core.runpod.client import RunPodClient
from app.core.runpod.models import PodRequest
from tests.runpod.fake_runpod import FakeRunPod, fake_runpod_server
from tests.runpod.schema import load_schema

GOOD_TOKEN = "hf_GOODTOKEN0123456789abcdef"


@dataclass
class FakeApi:
    """Answers by the bearer credential; records what each request carried."""

    answers: dict[str, tuple[int, dict[str, Any], dict[str, str]]]
    delay_s: float = 0.0
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    url: str = ""


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # the slow-server test's client gives up first, so the late reply meets a closed socket
        pass


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi(answers={})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            api.seen.append(("GET", self.path, auth))
            time.sleep(api.delay_s)
            status, body, headers = api.answers.get(
                auth.removeprefix("Bearer "),
                (401, {"type": "about:blank", "title": "Unauthorized", "status": 401}, {}),
            )
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield api
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_runpod_base_url_is_the_published_server() -> None:
    assert load_schema()["servers"][0]["url"] == credential_checks.RUNPOD_API_BASE


@pytest.fixture
def fake_runpod(tmp_path: Path) -> Iterator[FakeRunPod]:
    """The fake RunPod of tests/runpod (schema-checked both ways, pods in memory)."""
    with fake_runpod_server(tmp_path / "fake-runpod") as fake:
        yield fake


def test_runpod_key_accepted_with_a_schema_shaped_request(fake_runpod: FakeRunPod) -> None:
    pod = asyncio.run(_create_pod(fake_runpod))
    try:
        result = check_runpod_key(fake_runpod.account_key + "\n", base_url=fake_runpod.url)
    finally:
        asyncio.run(_terminate(fake_runpod, pod))

    assert result.ok
    assert result.message == "RunPod accepted the key (1 pod on the account)."
    check = fake_runpod.requests[-2]  # before the clean-up's delete
    # the request is the schema's listPods (the fixture fails the test on any schema violation),
    # authenticated the way its security scheme says
    schema = load_schema()
    assert (check.method, check.path) == ("GET", "/v2/pods")
    assert schema["security"] == [{"bearerAuth": []}]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert check.headers["Authorization"] == f"Bearer {fake_runpod.account_key}"
    assert fake_runpod.account_key not in result.message


def test_runpod_key_rejected(fake_runpod: FakeRunPod) -> None:
    result = check_runpod_key("rpa_WRONG", base_url=fake_runpod.url)
    assert result.outcome == "rejected"
    assert "rejected the key (401)" in result.message
    assert "rpa_WRONG" not in result.message

    # a valid key without the permission to list pods: a pod's own scoped key is one
    pod = asyncio.run(_create_pod(fake_runpod, args="sleep 30"))
    try:
        result = check_runpod_key(fake_runpod.pods[pod].key, base_url=fake_runpod.url)
    finally:
        asyncio.run(_terminate(fake_runpod, pod))
    assert result.outcome == "rejected"
    assert "lacks permission" in result.message


def test_runpod_rate_limit_says_when_to_retry(fake_runpod: FakeRunPod) -> None:
    fake_runpod.rate_limit_next(times=1, retry_after_s=7)
    started = time.monotonic()
    result = check_runpod_key(fake_runpod.account_key, base_url=fake_runpod.url)
    assert time.monotonic() - started < 5  # told, not waited out
    assert result.outcome == "error"
    assert "Try again in 7 s" in result.message


def test_runpod_server_error_does_not_judge_the_key(fake_runpod: FakeRunPod) -> None:
    fake_runpod.fail_next(times=1, status=503)
    result = check_runpod_key(fake_runpod.account_key, base_url=fake_runpod.url)
    assert result.outcome == "error"
    assert "server error (503); the key was not judged" in result.message


async def _create_pod(fake: FakeRunPod, args: str = "") -> str:
    request = PodRequest(
        name="tunedeck-check", image="runpod/pytorch:2.8.0", gpu_type_id="NVIDIA L4", args=args
    )
    async with RunPodClient(fake.account_key, base_url=fake.url) as client:
        return (await client.create_pod(request)).id


async def _terminate(fake: FakeRunPod, pod_id: str) -> None:
    async with RunPodClient(fake.account_key, base_url=fake.url) as client:
        await client.terminate_pod(pod_id)


def test_hf_token_accepted_names_the_account(fake_api: FakeApi) -> None:
    fake_api.answers[GOOD_TOKEN] = (
        200,
        {"type": "user", "name": "ada", "auth": {"accessToken": {"role": "write"}}},
        {},
    )
    result = check_hf_token(GOOD_TOKEN, base_url=fake_api.url)
    assert result.ok
    assert result.message == "Hugging Face accepted the token as ada (write token)."
    assert fake_api.seen[-1] == ("GET", "/api/whoami-v2", f"Bearer {GOOD_TOKEN}")


def test_hf_token_rejected(fake_api: FakeApi) -> None:
    result = check_hf_token("hf_nope", base_url=fake_api.url)
    assert result.outcome == "rejected"
    assert "huggingface.co/settings/tokens" in result.message


def test_empty_credential_is_not_sent(fake_api: FakeApi) -> None:
    assert check_hf_token("  ", base_url=fake_api.url).outcome == "rejected"
    assert check_runpod_key("", base_url=fake_api.url).outcome == "rejected"
    assert fake_api.seen == []


def test_nothing_listening_is_could_not_reach() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the port is closed again: a connection is refused
    result = check_runpod_key("rpa_ANYKEY", base_url=f"http://127.0.0.1:{port}")
    assert result.outcome == "unreachable"
    assert result.message.startswith("Could not reach RunPod")


def test_slow_server_is_could_not_reach_within_the_time_limit(fake_api: FakeApi) -> None:
    fake_api.delay_s = 1.0
    started = time.monotonic()
    result = check_hf_token(GOOD_TOKEN, base_url=fake_api.url, timeout_s=0.2)
    assert time.monotonic() - started < 0.9
    assert result.outcome == "unreachable"
    assert "no answer within 0.2 s" in result.message
