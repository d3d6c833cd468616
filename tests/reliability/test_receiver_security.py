"""No one in (issue 8, "Secrets"): the app's real receiver on 127.0.0.1 over a real store.

It listens on loopback unless configured otherwise; a job's token opens that job only (its
metrics, its alerts, its reads); an unknown job and a wrong token get the very same answer;
secrets are compared in constant time, and only a token's hash is stored.
"""

from __future__ import annotations

import http.client
import inspect
import ipaddress
import json
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from app.core import tokens
from app.core.receiver import ReceiverServer
from app.core.store import Store
from tests.app.fake_jobs import TokenJob, make_job
from tests.reliability.receiver_thread import ReceiverThread, StoreReader
from trainer.events import ALERTS_PATH, METRICS_PATH

API_KEY = "security-install-key-0123456789abcdef"


@dataclass
class Two:
    live: ReceiverThread
    store: Store
    a: TokenJob
    b: TokenJob
    reader: StoreReader

    def send(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, the headers that matter, body) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.live.port, timeout=10)
        try:
            raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(
                method,
                path,
                body=raw,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            resp = conn.getresponse()
            kept = {
                k: resp.headers[k]
                for k in ("Content-Type", "WWW-Authenticate")
                if k in resp.headers
            }
            return resp.status, kept, resp.read()
        finally:
            conn.close()


@pytest.fixture
def two(store: Store) -> Iterator[Two]:
    a, b = make_job(store, "a"), make_job(store, "b")
    reader = StoreReader(store.path)
    with ReceiverThread(store, api_key=API_KEY) as live:
        yield Two(live, store, a, b, reader)
    reader.close()


def metrics_of(job_id: str, step: int = 1) -> dict[str, Any]:
    return {"job_id": job_id, "metrics": [{"step": step, "train_loss": 1.0}]}


def alert_of(kind: str, job_id: str) -> dict[str, Any]:
    return {"type": kind, "job_id": job_id, "user_id": "local", "error_message": "boom"}


def test_it_listens_on_loopback_unless_told_otherwise(two: Two) -> None:
    assert inspect.signature(ReceiverServer).parameters["host"].default == "127.0.0.1"
    server = two.live.server
    assert server.bound_addresses, "the receiver listens on nothing"
    assert all(ipaddress.ip_address(h).is_loopback for h in server.bound_addresses)
    assert server.url.startswith("http://127.0.0.1:")
    # from this machine's own outward address it cannot be reached (UDP connect sends nothing)
    outward = _outward_address()
    if outward is not None and not ipaddress.ip_address(outward).is_loopback:
        with pytest.raises(OSError), socket.create_connection((outward, two.live.port), timeout=2):
            pass


def _outward_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: picks a route, sends no packet
        except OSError:
            return None  # no route at all: loopback is all there is
        return str(probe.getsockname()[0])


def test_a_token_posts_metrics_for_its_own_job_only(two: Two) -> None:
    bearer_a = {"Authorization": f"Bearer {two.a.token}"}
    assert two.send("POST", METRICS_PATH, metrics_of(two.b.id), bearer_a)[0] == 401
    assert two.store.metric_count(two.b.id) == 0
    assert two.send("POST", METRICS_PATH, metrics_of(two.a.id), bearer_a)[0] == 200
    assert two.store.metric_count(two.a.id) == 1
    # the install key is not a metrics credential (the contract posts metrics with a job token)
    assert two.send("POST", METRICS_PATH, metrics_of(two.b.id), {"X-API-Key": API_KEY})[0] == 401


@pytest.mark.parametrize("kind", ["job_failed", "job_completed", "job_cancelled", "job_started"])
def test_a_jobs_token_cannot_change_another_job_by_alert(two: Two, kind: str) -> None:
    bearer_a = {"Authorization": f"Bearer {two.a.token}"}
    before = two.store.require_job(two.b.id)
    for headers in (bearer_a, {**bearer_a, "X-API-Key": "not-the-key"}):
        status, _, _ = two.send("POST", ALERTS_PATH, alert_of(kind, two.b.id), headers)
        assert status == 401
    after = two.store.require_job(two.b.id)
    assert (after.status, after.error, after.ended_at) == (
        before.status,
        before.error,
        before.ended_at,
    )
    assert two.store.alerts(two.b.id) == []
    # ...while its own job's alert goes through on the token alone (decision 2)
    assert two.send("POST", ALERTS_PATH, alert_of(kind, two.a.id), bearer_a)[0] == 200
    assert [a["type"] for a in two.store.alerts(two.a.id)] == [kind]


def test_a_token_reads_its_own_job_only(two: Two) -> None:
    bearer_a = {"Authorization": f"Bearer {two.a.token}"}
    for what in ("metrics", "alerts"):
        assert two.send("GET", f"/api/jobs/{two.a.id}/{what}", None, bearer_a)[0] == 200
        assert two.send("GET", f"/api/jobs/{two.b.id}/{what}", None, bearer_a)[0] == 401
        assert (
            two.send("GET", f"/api/jobs/{two.b.id}/{what}", None, {"X-API-Key": API_KEY})[0] == 200
        )


def _same_for_unknown_job_and_wrong_token(two: Two, request: Callable[[str, str], Any]) -> None:
    wrong = "W" * len(two.a.token)
    answers = {
        "wrong token, real job": request(wrong, two.a.id),
        "another job's token": request(two.b.token, two.a.id),
        "real token, unknown job": request(two.a.token, "20260101-000000-ghost1"),
        "wrong token, unknown job": request(wrong, "20260101-000000-ghost1"),
    }
    assert len({repr(a) for a in answers.values()}) == 1, answers
    status, headers, body = next(iter(answers.values()))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body) == {"error": "unauthorized", "detail": "missing or wrong credentials"}


def test_an_unknown_job_and_a_wrong_token_answer_the_same(two: Two) -> None:
    def metrics(token: str, job_id: str) -> Any:
        return two.send(
            "POST", METRICS_PATH, metrics_of(job_id), {"Authorization": f"Bearer {token}"}
        )

    def bad_metrics(token: str, job_id: str) -> Any:  # a body problem is not told either
        body = {"job_id": job_id, "metrics": [{"step": "x"}], "n": float("nan")}
        raw = json.dumps(body).encode()
        return two.send("POST", METRICS_PATH, raw, {"Authorization": f"Bearer {token}"})

    def alert(token: str, job_id: str) -> Any:
        return two.send(
            "POST",
            ALERTS_PATH,
            alert_of("job_failed", job_id),
            {"Authorization": f"Bearer {token}"},
        )

    def read(token: str, job_id: str) -> Any:
        path = f"/api/jobs/{urllib.parse.quote(job_id)}/metrics"
        return two.send("GET", path, None, {"Authorization": f"Bearer {token}"})

    for request in (metrics, alert, read):
        _same_for_unknown_job_and_wrong_token(two, request)
    # a body that does not fit, with a token of no job: the same 401, not a 422
    wrong = "W" * len(two.a.token)
    assert bad_metrics(wrong, two.a.id) == metrics(wrong, two.a.id)
    assert two.reader.counts() == (0, 0)


def test_only_the_install_key_learns_that_a_job_does_not_exist(two: Two) -> None:
    ghost = "20260101-000000-ghost1"
    key = {"X-API-Key": API_KEY}
    assert two.send("POST", ALERTS_PATH, alert_of("job_started", ghost), key)[0] == 404
    assert two.send("GET", f"/api/jobs/{ghost}/alerts", None, key)[0] == 404
    wrong_key = {"X-API-Key": API_KEY + "x"}
    assert two.send("POST", ALERTS_PATH, alert_of("job_started", ghost), wrong_key)[0] == 401
    assert two.send("GET", f"/api/jobs/{ghost}/alerts", None, wrong_key)[0] == 401


def test_secrets_are_compared_in_constant_time(two: Two, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every token and key check goes through hmac.compare_digest, an unknown job's too (it is
    compared with a hash no token has, so that it takes the same path as a wrong token)."""
    import hmac

    compared: list[tuple[int, int]] = []

    def spy(a: Any, b: Any) -> bool:
        compared.append((len(a), len(b)))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(tokens, "hmac", SimpleNamespace(compare_digest=spy))
    bearer = {"Authorization": f"Bearer {two.a.token}"}
    requests = [
        ("POST", METRICS_PATH, metrics_of(two.a.id), bearer),
        ("POST", METRICS_PATH, metrics_of(two.a.id), {"Authorization": "Bearer wrong"}),
        ("POST", METRICS_PATH, metrics_of("ghost"), bearer),
        ("POST", ALERTS_PATH, alert_of("job_started", two.a.id), {"X-API-Key": API_KEY}),
        ("POST", ALERTS_PATH, alert_of("job_started", two.a.id), {"X-API-Key": "nope"}),
        ("POST", ALERTS_PATH, alert_of("loss_spike", "ghost"), bearer),
        ("GET", f"/api/jobs/{two.b.id}/metrics", None, bearer),
    ]
    for method, path, body, headers in requests:
        before = len(compared)
        two.send(method, path, body, headers)
        assert len(compared) > before, (method, path, headers)
    # hashes are compared as hex digests of one length, whatever the token's length
    token_checks = [c for c in compared if c[0] == 64]
    assert token_checks and all(b == 64 for _, b in token_checks)
    for check in (tokens.token_matches, tokens.key_matches):
        assert "compare_digest" in inspect.getsource(check)


def test_only_a_tokens_hash_is_stored_and_the_hash_opens_nothing(two: Two) -> None:
    raw = two.store.path.read_bytes() + _wal_bytes(two)
    assert two.a.token.encode() not in raw
    stored_hash = two.store.require_job(two.a.id).token_hash
    assert stored_hash
    status, _, _ = two.send(
        "POST", METRICS_PATH, metrics_of(two.a.id), {"Authorization": f"Bearer {stored_hash}"}
    )
    assert status == 401


def _wal_bytes(two: Two) -> bytes:
    wal = two.store.path.with_name(two.store.path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""
