"""Bad input against the app's real receiver (issue 8, "Bad input"), on 127.0.0.1 over a real
SQLite store.

Generated requests (hypothesis), per endpoint: bodies that are nearly right (points with nested
extras), NaN/Infinity/1e400 anywhere as raw JSON text, huge integers, wrong types, broken JSON,
random bytes; header sets with no, wrong, another job's or a closed job's credentials and odd
content types. For every one: no 5xx; a caller without credentials gets the one 401 whatever
the body; nothing is stored from a refused request; what a 200 says was stored is what the store
holds; every reply and every stored JSON text is strict JSON.

How many: ``TUNEDECK_FUZZ_EXAMPLES`` if set, else 5,000 per endpoint with ``TUNEDECK_LONG=1``
(the suite's long mode), else 250. A wall-clock budget per endpoint bounds a run
(``TUNEDECK_FUZZ_BUDGET_S``, default 60 s, 1,200 s in long mode), and every request has a
socket timeout. Each run prints its figures (examples sent, seconds).

Then one test per bounded outcome: huge numbers, NaN/Infinity at any depth, nesting 10,000
deep, multi-megabyte strings, wrong content types, a client that sends a byte a second.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.receiver import MAX_BODY_BYTES, RECENT_JOB_S
from app.core.receiver_openapi import load_openapi
from app.core.store import Store
from tests.app.fake_jobs import TokenJob, make_job
from tests.reliability.receiver_thread import ReceiverThread, StoreReader, strict_json
from trainer.events import ALERT_TYPES, ALERTS_PATH, METRIC_FIELDS, METRICS_PATH

API_KEY = "bad-input-install-key-0123456789"
LONG = os.environ.get("TUNEDECK_LONG") == "1"
EXAMPLES = int(os.environ.get("TUNEDECK_FUZZ_EXAMPLES") or (5000 if LONG else 250))
BUDGET_S = float(os.environ.get("TUNEDECK_FUZZ_BUDGET_S") or (1200 if LONG else 60))
SOCKET_TIMEOUT_S = 10.0
BIG = "__1e400__"  # stands for a number literal too big for a float (json.dumps cannot write it)


# -- the live receiver, its jobs, a client -------------------------------------------------------


@dataclass
class Scene:
    live: ReceiverThread
    store: Store
    own: TokenJob
    other: TokenJob
    closed: TokenJob
    reader: StoreReader

    def job_id(self, name: str) -> str:
        ids = {"own": self.own.id, "other": self.other.id, "closed": self.closed.id}
        return ids.get(name, name)


@pytest.fixture
def scene(store: Store) -> Iterator[Scene]:
    own, other, closed = (make_job(store, n) for n in ("own", "other", "closed"))
    store.set_status(closed.id, "completed")
    store.update_job(closed.id, ended_at=time.time() - RECENT_JOB_S - 60)
    reader = StoreReader(store.path)
    with ReceiverThread(store, api_key=API_KEY) as live:
        yield Scene(live, store, own, other, closed, reader)
    reader.close()


class Client:
    """One keep-alive connection, opened again whenever the receiver closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=SOCKET_TIMEOUT_S
                )
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except ConnectionError:  # RemoteDisconnected and BrokenPipeError among them
                self.close()  # a kept-alive connection the receiver had closed: once more
                if attempt:
                    raise
            except BaseException:
                self.close()  # never leave a half-used connection to the next request
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -- what is generated ---------------------------------------------------------------------------

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**40, BIG]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], odd_percent: int) -> Any:
    """``usual``, and ``odd`` about ``odd_percent`` in a hundred times: most generated requests
    must be nearly right, or nothing gets past the first check."""
    # hypothesis favours the ends of a range: the odd ones take a band in the middle
    return st.integers(0, 99).flatmap(lambda n: odd if 40 <= n < 40 + odd_percent else usual)


FINITE = st.floats(allow_nan=False, allow_infinity=False)
FINE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | FINITE | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIGURES = mostly(FINITE | st.none(), st.one_of(st.floats(), st.integers(), JSON_VALUES), 5)
EXTRAS = mostly(FINE_VALUES, JSON_VALUES, 20)
STEPS = mostly(st.integers(min_value=0, max_value=40), st.integers() | LEAVES, 5)
POINTS = st.builds(
    lambda step, named, extras, drop_step: {
        **({} if drop_step else {"step": step}),
        **named,
        **extras,
    },
    STEPS,
    st.dictionaries(st.sampled_from(METRIC_FIELDS), FIGURES, max_size=4),
    st.dictionaries(
        st.sampled_from(["x", "loss_trend", "note", "nested", "step_"]), EXTRAS, max_size=2
    ),
    st.integers(min_value=0, max_value=29).map(lambda n: n == 17),  # now and then no step
)
JOB_NAMES = mostly(st.sampled_from(["own", "own", "own", "other", "closed", "ghost"]), LEAVES, 5)
BATCHES = st.fixed_dictionaries(
    {
        "job_id": JOB_NAMES,
        "metrics": mostly(st.lists(POINTS, min_size=1, max_size=4), st.just([]), 5),
    },
    optional={"extra": EXTRAS},
)
ALERTS = st.fixed_dictionaries(
    {"type": mostly(st.sampled_from(ALERT_TYPES), LEAVES, 5), "job_id": JOB_NAMES},
    optional={
        "user_id": mostly(st.none() | st.text(max_size=8), LEAVES, 5),
        "duration": FIGURES,
        "loss": FIGURES,
        "current_step": STEPS,
        "total_steps": STEPS,
        "progress": FIGURES,
        "error_message": mostly(st.text(max_size=20), LEAVES, 5),
        "loss_trend": mostly(st.sampled_from(["rising", "falling"]), JSON_VALUES, 10),
        "detail": EXTRAS,
    },
)
BODIES_OF_METRICS = mostly(BATCHES, JSON_VALUES, 10)
BODIES_OF_ALERTS = mostly(ALERTS, JSON_VALUES, 10)
OPENING = ["own", "own", "own", "other", "closed", "closed", "key", "key", "key+own"]
NOT_OPENING = ["none", "garbage", "basic", "empty", "wrong_key", "odd_bytes"]
AUTHS = st.sampled_from([*OPENING, *NOT_OPENING])
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=latin-1",
    ]
)
ENCODINGS = mostly(st.none(), st.sampled_from(["gzip", "deflate", "identity"]), 8)
MUTATIONS = mostly(
    st.just("as_is"), st.sampled_from(["truncate", "garbage_tail", "bytes", "not_object"]), 15
)


def _substitute_jobs(body: Any, scene: Scene) -> Any:
    if isinstance(body, dict) and isinstance(body.get("job_id"), str):
        return {**body, "job_id": scene.job_id(body["job_id"])}
    return body


def _encode(body: Any, mutation: str, cut: int, noise: bytes) -> bytes:
    text = json.dumps(body, allow_nan=True).replace(json.dumps(BIG), "1e400")
    raw = text.encode("utf-8", "surrogatepass")
    if mutation == "truncate":
        return raw[: cut % max(len(raw), 1)]
    if mutation == "garbage_tail":
        return raw + noise
    if mutation == "bytes":
        return noise
    if mutation == "not_object":
        return (
            json.dumps([body], allow_nan=True)
            .replace(json.dumps(BIG), "1e400")
            .encode("utf-8", "surrogatepass")
        )
    return raw


def _headers(
    scene: Scene, auth: str, content_type: str | None, encoding: str | None = None
) -> dict[str, str]:
    tokens = {"own": scene.own, "other": scene.other, "closed": scene.closed}
    headers: dict[str, str] = {}
    if auth in tokens:
        headers["Authorization"] = f"Bearer {tokens[auth].token}"
    elif auth == "garbage":
        # one character off the job's token (never the token itself: tokens are random)
        first = "y" if scene.own.token.startswith("x") else "x"
        headers["Authorization"] = f"Bearer {first}{scene.own.token[1:]}"
    elif auth == "basic":
        headers["Authorization"] = f"Basic {scene.own.token}"
    elif auth == "empty":
        headers["Authorization"] = "Bearer "
    elif auth == "key":
        headers["X-API-Key"] = API_KEY
    elif auth == "wrong_key":
        headers["X-API-Key"] = API_KEY[:-1] + "X"
    elif auth == "odd_bytes":  # http.client sends these as the bytes 0x80-0xff: not UTF-8
        headers.update({"Authorization": "Bearer \xff\xfe\x80", "X-API-Key": "k\xe9y"})
    elif auth == "key+own":
        headers.update({"X-API-Key": API_KEY, "Authorization": f"Bearer {scene.own.token}"})
    if content_type is not None:
        headers["Content-Type"] = content_type
    if encoding is not None:  # the body is never compressed: what it claims does not fit
        headers["Content-Encoding"] = encoding
    return headers


def _token_job(scene: Scene, auth: str) -> str | None:
    """The job whose token the request carries (None: no token of a job)."""
    name = {"own": "own", "other": "other", "closed": "closed", "key+own": "own"}.get(auth)
    return scene.job_id(name) if name else None


def _check_reply(status: int, data: bytes) -> Any:
    assert status < 500, data
    reply = strict_json(data)  # a reply is strict JSON, an error one included
    if status >= 400:
        assert set(reply) == {"error", "detail"}, reply
    return reply


# -- the fuzzers ---------------------------------------------------------------------------------


@dataclass
class Run:
    """Counts of one endpoint's fuzz run; ``over`` once the wall-clock budget is spent."""

    name: str
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def over(self) -> bool:
        return time.monotonic() - self.started > BUDGET_S

    def count(self, status: int) -> None:
        self.sent += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        print(
            f"\nFIGURE receiver fuzz {self.name}: {self.sent} generated requests in "
            f"{elapsed:.1f} s, statuses {dict(sorted(self.statuses.items()))}"
        )
        # in long mode the budget must not have cut the run short: the claim is the count
        assert self.sent >= EXAMPLES, f"only {self.sent} of {EXAMPLES} within {BUDGET_S} s"


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # bounded by the socket timeout and the run's budget instead
    database=None,
    derandomize=not LONG,  # the same examples in every `make test`; fresh ones in long mode
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def test_generated_metrics_posts(scene: Scene) -> None:
    client, run = Client(scene.live.port), Run("metrics POST")

    @FUZZ_SETTINGS
    @given(
        body=BODIES_OF_METRICS,
        mutation=MUTATIONS,
        cut=st.integers(min_value=0, max_value=10_000),
        noise=st.binary(max_size=32),
        auth=AUTHS,
        content_type=CONTENT_TYPES,
        encoding=ENCODINGS,
    )
    def check(
        body: Any,
        mutation: str,
        cut: int,
        noise: bytes,
        auth: str,
        content_type: str | None,
        encoding: str | None,
    ) -> None:
        if run.over:
            return
        body = _substitute_jobs(body, scene)
        before, jobs_before = scene.reader.counts(), scene.reader.jobs()
        status, data = client.request(
            "POST",
            METRICS_PATH,
            _encode(body, mutation, cut, noise),
            _headers(scene, auth, content_type, encoding),
        )
        run.count(status)
        reply = _check_reply(status, data)
        token_job = _token_job(scene, auth)
        assert status in {200, 400, 401, 410, 413, 422}, (status, reply)
        if token_job is None:  # no token of any job: the one 401, whatever the body
            assert status == 401, (status, reply)
        after = scene.reader.counts()
        if status != 200:
            assert after == before and scene.reader.jobs() == jobs_before, reply
            return
        assert reply["job_id"] == token_job == body["job_id"]  # a token opens its own job only
        assert reply["stored"] + reply["merged"] == len(body["metrics"])
        assert after == (before[0] + reply["stored"], before[1])

    try:
        check()
    finally:
        client.close()
    run.report()
    for text in scene.reader.json_texts():
        strict_json(text)


def test_generated_alert_posts(scene: Scene) -> None:
    client, run = Client(scene.live.port), Run("alert POST")

    @FUZZ_SETTINGS
    @given(
        body=BODIES_OF_ALERTS,
        mutation=MUTATIONS,
        cut=st.integers(min_value=0, max_value=10_000),
        noise=st.binary(max_size=32),
        auth=AUTHS,
        content_type=CONTENT_TYPES,
        encoding=ENCODINGS,
    )
    def check(
        body: Any,
        mutation: str,
        cut: int,
        noise: bytes,
        auth: str,
        content_type: str | None,
        encoding: str | None,
    ) -> None:
        if run.over:
            return
        body = _substitute_jobs(body, scene)
        before, jobs_before = scene.reader.counts(), scene.reader.jobs()
        status, data = client.request(
            "POST",
            ALERTS_PATH,
            _encode(body, mutation, cut, noise),
            _headers(scene, auth, content_type, encoding),
        )
        run.count(status)
        reply = _check_reply(status, data)
        keyed = auth in ("key", "key+own")
        token_job = _token_job(scene, auth)
        assert status in {200, 400, 401, 404, 413, 422}, (status, reply)
        if not keyed and token_job is None:
            assert status == 401, (status, reply)
        if status == 404:
            assert keyed, reply  # only the install key learns that a job does not exist
        after = scene.reader.counts()
        if status != 200:
            assert after == before and scene.reader.jobs() == jobs_before, reply
            return
        if not keyed:
            assert reply["job_id"] == token_job  # a token posts its own job's alerts only
        assert after == (before[0], before[1] + int(reply["stored"]))

    try:
        check()
    finally:
        client.close()
    run.report()
    for text in scene.reader.json_texts():
        strict_json(text)


def test_generated_reads(scene: Scene) -> None:
    # something stored to read back, nested extras included
    scene.store.add_metrics(scene.own.id, [{"step": 1, "train_loss": 1.0, "x": {"a": [1, None]}}])
    scene.store.add_alert({"type": "loss_spike", "job_id": scene.own.id, "loss": 2.0})
    client, run = Client(scene.live.port), Run("GET")

    @FUZZ_SETTINGS
    @given(
        what=st.sampled_from(["metrics", "alerts"]),
        job=st.sampled_from(["own", "other", "ghost"])
        | st.text(
            st.characters(codec="utf-8", exclude_characters="/%.\\?#"), min_size=1, max_size=12
        ),
        after=st.none()
        | st.integers().map(str)
        | st.text(st.characters(codec="utf-8"), max_size=8),
        auth=AUTHS,
    )
    def check(what: str, job: str, after: str | None, auth: str) -> None:
        if run.over:
            return
        job_id = scene.job_id(job)
        path = f"/api/jobs/{urllib.parse.quote(job_id, safe='')}/{what}"
        if after is not None:
            path += "?" + urllib.parse.urlencode({"after_step": after})
        status, data = client.request("GET", path, None, _headers(scene, auth, None))
        run.count(status)
        reply = _check_reply(status, data)
        keyed = auth in ("key", "key+own")
        assert status in {200, 401, 404, 422}, (status, reply)
        if status == 404 and reply["error"] == "unknown_job":
            assert keyed, reply  # a path no route takes (odd characters) is aiohttp's not_found
        if status == 200 and not keyed:
            assert reply["job_id"] == _token_job(scene, auth) == job_id
        if not keyed and _token_job(scene, auth) != job_id and reply.get("error") != "not_found":
            assert status == 401, (status, reply)

    try:
        check()
    finally:
        client.close()
    run.report()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_from_the_openapi_document(scene: Scene, mode: GenerationMode) -> None:
    """Requests generated from the receiver's own OpenAPI document: every answer is one the
    document lists, in its content type and schema."""
    schema = schemathesis.openapi.from_dict(load_openapi())
    seen: set[int] = set()

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=schema.as_strategy(generation_mode=mode), real_job=st.booleans(), auth=st.booleans()
    )
    def check(case: schemathesis.Case, real_job: bool, auth: bool) -> None:
        if real_job and isinstance(case.body, dict) and "job_id" in case.body:
            case.body["job_id"] = scene.own.id
        if real_job and case.path_parameters and "job_id" in case.path_parameters:
            case.path_parameters["job_id"] = scene.own.id
        headers = dict(case.headers or {})
        if auth:
            headers.update({"Authorization": f"Bearer {scene.own.token}", "X-API-Key": API_KEY})
        case.headers = headers
        response = case.call(base_url=scene.live.url, timeout=SOCKET_TIMEOUT_S)
        seen.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    check()
    assert max(seen) < 500
    assert {404, 422} & seen  # generated requests reached past the credentials
    if mode == GenerationMode.POSITIVE:
        assert 200 in seen


# -- bounded outcomes, one by one ----------------------------------------------------------------


def _post(scene: Scene, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    client = Client(scene.live.port)
    try:
        status, data = client.request(
            "POST", path, raw, {"Content-Type": "application/json", **headers}
        )
    finally:
        client.close()
    return status, _check_reply(status, data)


def _batch(scene: Scene, point_text: str) -> bytes:
    return f'{{"job_id": {json.dumps(scene.own.id)}, "metrics": [{point_text}]}}'.encode()


def test_huge_numbers(scene: Scene) -> None:
    bearer = {"Authorization": f"Bearer {scene.own.token}"}
    answers = {
        "step 2**64": _post(scene, METRICS_PATH, _batch(scene, f'{{"step": {2**64}}}'), bearer),
        "loss 2**64": _post(
            scene, METRICS_PATH, _batch(scene, f'{{"step": 1, "train_loss": {2**64}}}'), bearer
        ),
        "extra 2**64": _post(
            scene, METRICS_PATH, _batch(scene, f'{{"step": 2, "n": {2**64}}}'), bearer
        ),
        "loss 1e400": _post(
            scene, METRICS_PATH, _batch(scene, '{"step": 3, "train_loss": 1e400}'), bearer
        ),
        "extra -1e400": _post(
            scene, METRICS_PATH, _batch(scene, '{"step": 3, "x": {"y": [-1e400]}}'), bearer
        ),
        "10**400 digits": _post(
            scene, METRICS_PATH, _batch(scene, '{"step": 4, "n": 1%s}' % ("0" * 400)), bearer
        ),
        "5,000 digits": _post(
            scene, METRICS_PATH, _batch(scene, '{"step": 5, "n": 1%s}' % ("0" * 5000)), bearer
        ),
    }
    statuses = {k: v[0] for k, v in answers.items()}
    assert statuses == {
        "step 2**64": 422,
        "loss 2**64": 200,
        "extra 2**64": 200,
        "loss 1e400": 422,
        "extra -1e400": 422,
        "10**400 digits": 200,
        "5,000 digits": 422,  # past what the JSON parser takes as a number
    }
    assert answers["step 2**64"][1]["detail"].startswith("metrics.0.step:")
    assert answers["loss 1e400"][1]["detail"].startswith("metrics.0.train_loss: NaN/Infinity")
    assert answers["extra -1e400"][1]["detail"].startswith("metrics.0.x.y.0: NaN/Infinity")
    stored = {p["step"]: p for p in scene.store.metrics(scene.own.id)}
    assert stored[1]["train_loss"] == float(2**64)
    assert stored[2]["n"] == 2**64 and stored[4]["n"] == 10**400  # integers kept exactly


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("where", "named"),
    [
        ('{"step": 1, "train_loss": %s}', "metrics.0.train_loss"),
        ('{"step": 1, "x": %s}', "metrics.0.x"),
        ('{"step": 1, "x": {"a": %s}}', "metrics.0.x.a"),
        ('{"step": 1, "x": [1, [2, {"b": %s}]]}', "metrics.0.x.1.1.b"),
        ('{"step": 1}, {"step": 2, "deep": ' + "[" * 50 + "%s" + "]" * 50 + "}", "metrics.1.deep"),
    ],
)
def test_nan_and_infinity_at_any_depth(scene: Scene, literal: str, where: str, named: str) -> None:
    bearer = {"Authorization": f"Bearer {scene.own.token}"}
    status, reply = _post(scene, METRICS_PATH, _batch(scene, where % literal), bearer)
    assert status == 422
    assert reply["detail"].startswith(named) and "NaN/Infinity is not JSON" in reply["detail"]
    assert scene.store.metric_count(scene.own.id) == 0


@pytest.mark.parametrize("literal", ["NaN", "-Infinity"])
def test_nan_in_an_alert_at_any_depth(scene: Scene, literal: str) -> None:
    body = '{"type": "loss_spike", "job_id": JOB, "loss": 1, "detail": {"last": [LITERAL]}}'
    body = body.replace("JOB", json.dumps(scene.own.id)).replace("LITERAL", literal)
    status, reply = _post(scene, ALERTS_PATH, body.encode(), {"X-API-Key": API_KEY})
    assert (status, reply["detail"]) == (
        422,
        "detail.last.0: NaN/Infinity is not JSON; send null instead",
    )
    assert scene.store.alerts() == []


def test_nesting_ten_thousand_deep(scene: Scene) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    metrics = _batch(scene, '{"step": 1, "x": ' + deep + "}")
    alert = f'{{"job_id": {json.dumps(scene.own.id)}, "type": "stalled", "x": {deep}}}'.encode()
    bearer = {"Authorization": f"Bearer {scene.own.token}"}
    assert _post(scene, METRICS_PATH, metrics, bearer)[0] == 422
    assert _post(scene, ALERTS_PATH, alert, {"X-API-Key": API_KEY})[0] == 422
    assert _post(scene, ALERTS_PATH, alert, bearer)[0] == 422
    # without credentials the body is not even judged
    assert _post(scene, METRICS_PATH, metrics, {"Authorization": "Bearer wrong"})[0] == 401
    assert scene.reader.counts() == (0, 0)


def test_multi_megabyte_strings(scene: Scene) -> None:
    bearer = {"Authorization": f"Bearer {scene.own.token}"}
    under = "x" * (MAX_BODY_BYTES - 1024)
    over = "y" * (MAX_BODY_BYTES + 1)
    status, reply = _post(
        scene, METRICS_PATH, _batch(scene, json.dumps({"step": 1, "note": under})), bearer
    )
    assert status == 200 and reply["stored"] == 1
    assert scene.store.metrics(scene.own.id)[0]["note"] == under
    status, reply = _post(
        scene, METRICS_PATH, _batch(scene, json.dumps({"step": 2, "note": over})), bearer
    )
    assert status == 413 and reply["error"] == "request_entity_too_large"
    status, _ = _post(scene, METRICS_PATH, _batch(scene, json.dumps({"step": under})), bearer)
    assert status == 422  # a 4 MB step: refused by name, not stored
    assert scene.store.metric_count(scene.own.id) == 1


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain", "valid", 200),  # the Content-Type is not checked: the body is read as JSON
        (None, "valid", 200),
        ("application/x-www-form-urlencoded", b"job_id=a&metrics=b", 422),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\n\r\nhello\r\n--xyz--\r\n", 422),
        ("application/json; charset=latin-1", b'{"job_id": "\xe9"}', 422),
        ("application/json", b"", 422),
    ],
)
def test_wrong_content_types(
    scene: Scene, content_type: str | None, body: bytes | str, expected: int
) -> None:
    raw = _batch(scene, '{"step": 7}') if body == "valid" else body
    assert isinstance(raw, bytes)
    headers = {"Authorization": f"Bearer {scene.own.token}"}
    if content_type is not None:  # None: no Content-Type at all (http.client adds none)
        headers["Content-Type"] = content_type
    client = Client(scene.live.port)
    try:
        status, data = client.request("POST", METRICS_PATH, raw, headers)
    finally:
        client.close()
    _check_reply(status, data)
    assert status == expected
    assert scene.store.metric_count(scene.own.id) == (1 if expected == 200 else 0)


# -- a client that sends a byte a second -----------------------------------------------------------

SLOW_READ_TIMEOUT_S = 2.0  # the receiver's read_timeout_s in this test
SLOW_CLIENT_FOR_S = 10.0  # how long the slow client keeps sending, at most


def _trickle(port: int, head: bytes, trickle: bytes) -> tuple[float, bytes]:
    """Send ``head`` at once, then ``trickle`` one byte a second, until the receiver closes the
    connection or SLOW_CLIENT_FOR_S passes. Returns (seconds until closed, what came back)."""
    started = time.monotonic()
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(head)
        for byte in trickle:
            if time.monotonic() - started > SLOW_CLIENT_FOR_S:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue  # nothing yet: the next byte after this second
            except ConnectionResetError:
                break
            got += chunk
            if not chunk:
                break
        else:
            return time.monotonic() - started, got
    return time.monotonic() - started, got


@pytest.mark.parametrize("part", ["body", "head"])
def test_a_client_sending_a_byte_a_second_is_cut_while_others_are_served(
    store: Store, part: str
) -> None:
    job = make_job(store, "busy")
    with ReceiverThread(store, api_key=API_KEY, read_timeout_s=SLOW_READ_TIMEOUT_S) as live:
        body = json.dumps({"job_id": job.id, "metrics": [{"step": 1}]}).encode()
        request_head = (
            f"POST {METRICS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {job.token}\r\nContent-Type: application/json\r\n"
        )
        if part == "body":
            head = (request_head + f"Content-Length: {len(body) + 100}\r\n\r\n").encode()
            trickle = body + b" " * 100
        else:  # the request head itself trickles in
            head, trickle = (
                request_head[:20].encode(),
                request_head[20:].encode() + b"X-Slow: " + b"a" * 100,
            )

        answered: list[float] = []
        stop = threading.Event()

        def busy_client() -> None:
            client = Client(live.port)
            step = 100
            while not stop.is_set():
                sent = time.monotonic()
                status, _ = client.request(
                    "POST",
                    METRICS_PATH,
                    json.dumps({"job_id": job.id, "metrics": [{"step": step}]}).encode(),
                    {"Authorization": f"Bearer {job.token}"},
                )
                assert status == 200
                answered.append(time.monotonic() - sent)
                step += 1
                stop.wait(0.1)
            client.close()

        other = threading.Thread(target=busy_client, daemon=True)
        other.start()
        cut_after, got = _trickle(live.port, head, trickle)
        stop.set()
        other.join(10)
    print(
        f"\nFIGURE slow client ({part}): cut after {cut_after:.1f} s; meanwhile {len(answered)} "
        f"answers to another client, slowest {max(answered) * 1000:.0f} ms"
    )
    # cut within the read timeout plus the linger after an early answer, well before the end
    assert cut_after < SLOW_READ_TIMEOUT_S + 3.5
    if part == "body":
        assert got.startswith(b"HTTP/1.1 408"), got[:100]
    assert len(answered) >= 5 and max(answered) < 1.0
    assert store.metric_count(job.id) == len(answered)  # the slow request stored nothing


@pytest.mark.parametrize(
    "method_path", [("POST", METRICS_PATH), ("POST", ALERTS_PATH), ("GET", "")]
)
def test_credentials_that_are_not_utf8_are_refused_not_a_server_error(
    scene: Scene, method_path: tuple[str, str]
) -> None:
    """Found by this suite: a header byte past 0x7f reached the secret comparison as a lone
    surrogate, and encoding it raised (a 500)."""
    method, path = method_path
    path = path or f"/api/jobs/{scene.own.id}/metrics"
    body = json.dumps({"job_id": scene.own.id, "type": "job_started", "metrics": [{"step": 1}]})
    for headers in (
        {"Authorization": "Bearer \xff\xfe\x80"},
        {"X-API-Key": "\xe9"},
        {"Authorization": "Bearer \x80" + scene.own.token, "X-API-Key": API_KEY + "\xe9"},
    ):
        client = Client(scene.live.port)
        try:
            status, data = client.request(
                method, path, body.encode() if method == "POST" else None, headers
            )
        finally:
            client.close()
        assert (status, _check_reply(status, data)["error"]) == (401, "unauthorized")
    assert scene.reader.counts() == (0, 0)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_does_not_decompress_is_a_400_and_a_bomb_a_413(
    scene: Scene, encoding: str
) -> None:
    """Found by this suite: a Content-Encoding the body does not match made aiohttp raise
    while reading it (a 500). A body that inflates past the limit is cut at the limit."""
    headers = {"Authorization": f"Bearer {scene.own.token}", "Content-Encoding": encoding}
    client = Client(scene.live.port)
    try:
        status, data = client.request("POST", METRICS_PATH, b"not compressed at all", headers)
        assert (status, _check_reply(status, data)["error"]) == (400, "bad_request")
        bomb = gzip.compress(b"[" + b" " * (8 * MAX_BODY_BYTES) + b"]")
        status, data = client.request(
            "POST", METRICS_PATH, bomb, {**headers, "Content-Encoding": "gzip"}
        )
        assert (status, _check_reply(status, data)["error"]) == (413, "request_entity_too_large")
        good = json.dumps({"job_id": scene.own.id, "metrics": [{"step": 1}]}).encode()
        packed = gzip.compress(good) if encoding == "gzip" else zlib.compress(good)
        assert client.request("POST", METRICS_PATH, packed, headers)[0] == 200
        brotli = {**headers, "Content-Encoding": "br"}  # not taken: said so
        status, data = client.request("POST", METRICS_PATH, b"xx", brotli)
        assert (status, _check_reply(status, data)["error"]) == (400, "bad_request")
        cut = {**headers, "Content-Encoding": "gzip"}
        status, data = client.request("POST", METRICS_PATH, gzip.compress(good)[:-12], cut)
        assert "cut short" in _check_reply(status, data)["detail"]
    finally:
        client.close()
    assert scene.reader.counts() == (1, 0)
