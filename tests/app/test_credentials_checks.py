"""The "Test" buttons' checks against fake RunPod and Hugging Face servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.core import credential_checks
from app.core.credential_checks import check_hf_token, check_runpod_key
from tests.runpod.schema import load_schema

GOOD_KEY = "rpa_GOODKEY0123456789abcdef"
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


def test_runpod_key_accepted_with_a_schema_shaped_request(fake_api: FakeApi) -> None:
    schema = load_schema()
    operation = schema["paths"]["/v2/pods"]["get"]
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]["pods"]
    fake_api.answers[GOOD_KEY] = (200, example["value"], {})

    result = check_runpod_key(GOOD_KEY + "\n", base_url=fake_api.url)

    assert result.ok
    assert result.message == "RunPod accepted the key (1 pod on the account)."
    method, path, auth = fake_api.seen[-1]
    # the request is the schema's listPods, authenticated the way its security scheme says
    assert (method, path) == ("GET", "/v2/pods")
    assert schema["security"] == [{"bearerAuth": []}]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert auth == f"Bearer {GOOD_KEY}"
    assert GOOD_KEY not in result.message


def test_runpod_key_rejected(fake_api: FakeApi) -> None:
    result = check_runpod_key("rpa_WRONG", base_url=fake_api.url)
    assert result.outcome == "rejected"
    assert "rejected the key (401)" in result.message
    assert "rpa_WRONG" not in result.message

    fake_api.answers["rpa_NOPODS"] = (403, {"title": "Forbidden", "status": 403}, {})
    result = check_runpod_key("rpa_NOPODS", base_url=fake_api.url)
    assert result.outcome == "rejected"
    assert "lacks permission" in result.message


def test_runpod_rate_limit_says_when_to_retry(fake_api: FakeApi) -> None:
    fake_api.answers[GOOD_KEY] = (429, {"status": 429}, {"Retry-After": "7"})
    result = check_runpod_key(GOOD_KEY, base_url=fake_api.url)
    assert result.outcome == "error"
    assert "Try again in 7 s" in result.message


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
    result = check_runpod_key(GOOD_KEY, base_url=f"http://127.0.0.1:{port}")
    assert result.outcome == "unreachable"
    assert result.message.startswith("Could not reach RunPod")


def test_slow_server_is_could_not_reach_within_the_time_limit(fake_api: FakeApi) -> None:
    fake_api.delay_s = 1.0
    started = time.monotonic()
    result = check_hf_token(GOOD_TOKEN, base_url=fake_api.url, timeout_s=0.2)
    assert time.monotonic() - started < 0.9
    assert result.outcome == "unreachable"
    assert "no answer within 0.2 s" in result.message
