"""A fake RunPod on 127.0.0.1: the REST v2 endpoints the client uses, answering from and checked
against the published schema, with simulated pods and a reverse proxy to their ports.

It runs on its own thread and event loop, so sync tests, ``asyncio.run`` tests and tests on a
qasync loop can all use it. ``fake_runpod_server()`` (and the ``fake_runpod`` fixture built on it)
fails the test when a request or an answer broke the schema, when a pod is left not terminated,
or when a simulated pod's process is still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import string
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.core.runpod.catalog import GPU_TABLE_PATH
from tests.runpod.fake_contract import Contract
from tests.runpod.fake_proxy import FakeProxy, ProxyFaults
from tests.runpod.schema import load_schema
from tests.runpod.sim_pod import SimulatedPod, base_environment, free_port

ACCOUNT_KEY = "rpa_FAKEACCOUNT" + "0123456789ABCDEF"
DATA_CENTER = "SIM-LOCAL-1"
NO_STOCK_DETAIL = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
ACTIONS_BY_STATUS = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
    "TERMINATED": [],
}
JSON_BODY = web.RequestKey("json_body", dict[str, Any])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass
class FakePod:
    id: str
    body: dict[str, Any]  # the create request
    key: str  # RUNPOD_API_KEY inside the pod: good for this pod only
    price: float  # USD per hour for the whole pod
    created: float = field(default_factory=time.time)
    sim: SimulatedPod | None = None
    port_map: dict[int, int] = field(default_factory=dict)
    stopped: bool = False
    error: bool = False
    terminated_at: float | None = None
    billed_s: float = 0.0
    billing_since: float | None = None

    @property
    def gpu(self) -> dict[str, Any]:
        return dict(self.body["gpu"])

    def status(self, provision_s: float) -> str:
        if self.terminated_at is not None:
            return "TERMINATED"
        if self.error:
            return "ERROR"
        if self.stopped:
            return "EXITED"
        if time.time() - self.created < provision_s:
            return "PROVISIONING"
        if self.sim is not None and self.sim.ended_at is not None:
            return "EXITED"
        return "RUNNING"


@dataclass
class Faults:
    """The knobs; each ``next`` counter is consumed by the requests it applies to."""

    rate_limited: int = 0
    retry_after_s: int = 1
    server_errors: int = 0
    server_error_status: int = 503
    delay_s: float = 0.0
    delayed: int = 0
    create_then_fail: int = 0  # creates the pod, then answers 500
    refuse_create: list[tuple[int, str, list[str]]] = field(default_factory=list)
    stock: dict[str, str] = field(default_factory=dict)  # GPU id -> NONE/LOW/MEDIUM/HIGH


class FakeRunPod:
    def __init__(
        self,
        schema: dict[str, Any],
        workdir: Path,
        *,
        account_key: str = ACCOUNT_KEY,
        provision_s: float = 0.0,
        proxy_cut_s: float = 100.0,
    ) -> None:
        self.contract = Contract(schema)
        self.workdir = workdir
        self.account_key = account_key
        self.provision_s = provision_s
        self.faults = Faults()
        self.proxy = ProxyFaults(cut_s=proxy_cut_s)
        self.extra_pod_env: dict[str, str] = {}
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.pods: dict[str, FakePod] = {}
        self._lock = threading.RLock()
        self._gpu_table = json.loads(GPU_TABLE_PATH.read_text(encoding="utf-8"))["gpus"]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- running ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proxy_template(self) -> str:
        """The proxy URL template for the app (the real one: https://{pod_id}-{port}.proxy...)."""
        return f"{self.url}/proxy/{{pod_id}}-{{port}}"

    def start(self) -> FakeRunPod:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-runpod", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and kill every simulated pod's processes."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        for pod in list(self.pods.values()):
            if pod.sim is not None:
                pod.sim.kill()

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("GET", "/v2/pods", self._list_pods)
        app.router.add_route("POST", "/v2/pods", self._create_pod)
        app.router.add_route("GET", "/v2/pods/{id}", self._get_pod)
        app.router.add_route("DELETE", "/v2/pods/{id}", self._delete_pod)
        app.router.add_route("POST", "/v2/pods/{id}/action", self._pod_action)
        app.router.add_route("GET", "/v2/pods/{id}/logs", self._pod_logs)
        app.router.add_route("GET", "/v2/catalog/gpus", self._gpu_types)
        app.router.add_route("GET", "/v2/billing/pods", self._pod_billing)
        proxy = FakeProxy(self)
        for method in ("GET", "POST", "PUT", "DELETE", "HEAD"):
            app.router.add_route(method, "/proxy/{target}/{tail:.*}", proxy.forward)
            app.router.add_route(method, "/proxy/{target}", proxy.forward)
        app.on_cleanup.append(proxy.close)
        app.middlewares.append(self._middleware)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _stop_site(self) -> None:
        self._reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reaper
        if self._runner is not None:
            await self._runner.cleanup()

    async def _reap(self) -> None:
        """A container stops when its main process ends: note it, kill what is left."""
        while True:
            await asyncio.sleep(0.2)
            for pod in list(self.pods.values()):
                sim = pod.sim
                if sim is not None and sim.ended_at is None and not sim.main_alive:
                    await asyncio.to_thread(sim.kill)
                    self._stop_billing(pod)

    # -- knobs -------------------------------------------------------------------------------

    def rate_limit_next(self, times: int = 1, retry_after_s: int = 1) -> None:
        with self._lock:
            self.faults.rate_limited, self.faults.retry_after_s = times, retry_after_s

    def fail_next(self, times: int = 1, status: int = 503) -> None:
        """The next API requests answer a 5xx and do nothing."""
        with self._lock:
            self.faults.server_errors, self.faults.server_error_status = times, status

    def delay_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self.faults.delay_s, self.faults.delayed = seconds, times

    def fail_next_create_after_creating(self) -> None:
        """RunPod's known failure: the create answers 500 although the pod exists and bills."""
        with self._lock:
            self.faults.create_then_fail += 1

    def refuse_next_create(self, status: int, detail: str, errors: list[str] | None = None) -> None:
        with self._lock:
            self.faults.refuse_create.append((status, detail, list(errors or [])))

    def set_stock(self, gpu_id: str, level: str) -> None:
        with self._lock:
            self.faults.stock[gpu_id] = level

    def make_pod_fail(self, pod_id: str) -> None:
        """The pod goes to ERROR (its container dies)."""
        pod = self.pods[pod_id]
        if pod.sim is not None:
            pod.sim.kill()
        pod.error = True
        self._stop_billing(pod)

    def make_proxy_unreachable(self, pod_id: str, seconds: float, status: int = 502) -> None:
        self.proxy.unreachable[pod_id] = (time.monotonic() + seconds, status)

    # -- inspection --------------------------------------------------------------------------

    def pod_status(self, pod_id: str) -> str:
        return self.pods[pod_id].status(self.provision_s)

    def live_pods(self) -> list[str]:
        """Pods not terminated (any status but TERMINATED: a stopped pod still bills disk)."""
        return [pid for pid, pod in list(self.pods.items()) if pod.terminated_at is None]

    def alive_processes(self) -> dict[str, list[int]]:
        return {
            pid: pod.sim.pids()
            for pid, pod in list(self.pods.items())
            if pod.sim is not None and pod.sim.alive()
        }

    def problems(self) -> list[str]:
        found = [f"schema: {v}" for v in self.violations]
        found += [
            f"pod {pid} ({self.pods[pid].body['name']}) was left {self.pod_status(pid)}, "
            "not terminated"
            for pid in self.live_pods()
        ]
        found += [
            f"simulated pod {pid} still has live processes {pids}"
            for pid, pids in self.alive_processes().items()
        ]
        return found

    def requests_to(self, prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- plumbing ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                request.method, request.path, request.query_string, dict(request.headers), body
            )
        )
        if request.path.startswith("/proxy/"):
            return await handler(request)
        resource = request.match_info.route.resource
        op = self.contract.operation(request.method, resource.canonical if resource else "")
        if op is None:
            self.violations.append(f"{request.method} {request.path}: not a schema operation")
            return problem(404, "Not Found", "resource not found")
        try:
            response = await self._answer(request, op, body, handler)
        except Exception as exc:  # a bug in the fake: fail the test, answer like a server would
            self.violations.append(f"the fake crashed on {request.method} {request.path}: {exc!r}")
            response = problem(500, "Internal Server Error", "the fake crashed")
        self._check_answer(op, response)
        return response

    async def _answer(
        self, request: web.Request, op: dict[str, Any], body: bytes, handler: Handler
    ) -> web.StreamResponse:
        denied = self._authorise(request)
        if denied is not None:
            return denied
        with self._lock:
            faults = self.faults
            delay = faults.delay_s if faults.delayed > 0 else 0.0
            faults.delayed = max(faults.delayed - 1, 0)
            if faults.rate_limited > 0:
                faults.rate_limited -= 1
                return problem(
                    429,
                    "Too Many Requests",
                    "rate limit exceeded for the minute window",
                    headers={"Retry-After": str(faults.retry_after_s)},
                )
            if faults.server_errors > 0:
                faults.server_errors -= 1
                return problem(
                    faults.server_error_status, "Service Unavailable", "upstream failure"
                )
        violations = self.contract.request_problems(op, request.query, body)
        if violations:
            self.violations.extend(violations)
            status = 400 if any("not JSON" in v for v in violations) else 422
            return problem(
                status,
                "Unprocessable Entity" if status == 422 else "Bad Request",
                "Request validation failed.",
                errors=[v.split(": ", 1)[-1].removeprefix("body ") for v in violations],
            )
        request[JSON_BODY] = json.loads(body) if body else {}
        response = await handler(request)
        if delay:  # done, but answered late: a client that gave up does not know it was done
            await asyncio.sleep(delay)
        return response

    def _authorise(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not token:
            return problem(401, "Unauthorized", "missing bearer token")
        if _same(token, self.account_key):
            return None
        pod = next((p for p in self.pods.values() if _same(p.key, token)), None)
        if pod is None:
            return problem(401, "Unauthorized", "invalid api key")
        own = request.match_info.get("id") == pod.id and request.path == f"/v2/pods/{pod.id}"
        if own and request.method in ("GET", "DELETE"):
            return None
        return problem(403, "Forbidden", "access denied")

    def _check_answer(self, op: dict[str, Any], response: web.StreamResponse) -> None:
        if not isinstance(response, web.Response):
            return  # the log stream: checked by its content type when prepared
        body = response.body if isinstance(response.body, bytes) else b""
        content_type = response.content_type if body else ""
        self.violations.extend(
            self.contract.answer_problems(op, response.status, content_type, body)
        )

    def _stop_billing(self, pod: FakePod) -> None:
        if pod.billing_since is not None:
            pod.billed_s += time.time() - pod.billing_since
            pod.billing_since = None

    # -- pods ------------------------------------------------------------------------------------

    def _pod_json(self, pod: FakePod) -> dict[str, Any]:
        status = pod.status(self.provision_s)
        running = status == "RUNNING"
        started = pod.created + self.provision_s
        ports = list(pod.body.get("ports", []))
        return {
            "id": pod.id,
            "name": pod.body["name"],
            "status": status,
            "actions": ACTIONS_BY_STATUS[status],
            "image": pod.body.get("image", ""),
            "args": pod.body.get("args", ""),
            "disk": pod.body.get("disk", 50),
            "mounts": pod.body.get("mounts", {}),
            "ports": ports,
            "env": dict(pod.body.get("env", {})),
            "registry": None,
            "gpu": {"id": pod.gpu["id"], "count": pod.gpu.get("count", 1)},
            "cloud": pod.body.get("cloud", "SECURE"),
            "dataCenterId": DATA_CENTER,
            "cudaVersion": "12.8",
            "ssh": {"proxy": None, "direct": None},
            "template": None,
            "cost": pod.price if status in ("PROVISIONING", "STARTING", "RUNNING") else 0.0,
            "locked": False,
            "globalNetworking": {"enabled": False},
            "runtime": {
                "uptime": int(time.time() - started),
                "ports": [
                    {"private": int(p.split("/")[0]), "public": None, "type": "http", "ip": None}
                    for p in ports
                    if p.endswith("/http")
                ],
            }
            if running
            else None,
            "createdAt": _iso(pod.created),
            "startedAt": _iso(started) if status != "PROVISIONING" else None,
        }

    def _gpu_row(self, gpu_id: str) -> dict[str, Any] | None:
        return next((row for row in self._gpu_table if row["id"] == gpu_id), None)

    async def _create_pod(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        with self._lock:
            if self.faults.refuse_create:
                status, detail, errors = self.faults.refuse_create.pop(0)
                return problem(status, _TITLES.get(status, "Error"), detail, errors=errors)
            fail_after = self.faults.create_then_fail > 0
            self.faults.create_then_fail = max(self.faults.create_then_fail - 1, 0)
        if "gpu" not in body:
            return problem(400, "Bad Request", "the fake simulates GPU pods only: set `gpu`")
        gpu_id, count = body["gpu"]["id"], body["gpu"].get("count", 1)
        cloud = body.get("cloud", "SECURE").lower()
        row = self._gpu_row(gpu_id)
        if row is None or row[f"{cloud}_price"] is None:
            return problem(
                400,
                "Bad Request",
                "invalid GPU type",
                errors=[f"gpu.id: unknown GPU type {gpu_id!r} in the {cloud} cloud"],
            )
        if count > row[f"max_count_{cloud}"]:
            return problem(
                400,
                "Bad Request",
                "GPU count too high",
                errors=[f"gpu.count: at most {row[f'max_count_{cloud}']} for {gpu_id}"],
            )
        if len(body.get("env", {})) > 50:
            return problem(
                400,
                "Bad Request",
                "too many environment variables",
                errors=["env: at most 50 variables"],
            )
        if self.faults.stock.get(gpu_id, "HIGH") == "NONE":
            return problem(400, "Bad Request", NO_STOCK_DETAIL)
        pod = FakePod(
            id=_pod_id(),
            body=body,
            key="rpa_POD" + secrets.token_hex(16),
            price=round(row[f"{cloud}_price"] * count, 4),
        )
        pod.billing_since = pod.created
        self.pods[pod.id] = pod
        await asyncio.to_thread(self._boot, pod)
        if fail_after:
            return problem(500, "Internal Server Error", "upstream failure while creating the pod")
        return json_response(201, self._pod_json(pod))

    def _boot(self, pod: FakePod) -> None:
        """Start the container: the start command (``args``) as a local process."""
        command = str(pod.body.get("args", "")).strip()
        if not command:
            return
        env = base_environment()
        env.update(self.extra_pod_env)
        env.update(pod.body.get("env", {}))
        for entry in pod.body.get("ports", []):
            number, _, kind = entry.partition("/")
            if kind == "http":
                pod.port_map[int(number)] = pod.port_map.get(int(number)) or free_port()
                env[f"TUNEDECK_SIM_PORT_{number}"] = str(pod.port_map[int(number)])
        network = pod.body.get("mounts", {}).get("network") or []
        env.update(
            {
                "RUNPOD_POD_ID": pod.id,
                "RUNPOD_API_KEY": pod.key,
                "RUNPOD_GPU_COUNT": str(pod.gpu.get("count", 1)),
                "RUNPOD_CPU_COUNT": "2",
                "RUNPOD_PUBLIC_IP": "127.0.0.1",
                "RUNPOD_DC_ID": DATA_CENTER,
                "TUNEDECK_RUNPOD_API_URL": self.url,
                # a real pod listens on every interface behind RunPod's proxy; a simulated one
                # stays on loopback (network tests never open a port beyond this machine)
                "TUNEDECK_AGENT_HOST": "127.0.0.1",
            }
        )
        if network:
            env["RUNPOD_VOLUME_ID"] = network[0]["volumeId"]
        pod.sim = SimulatedPod(
            command, env, self.workdir / "pods" / pod.id, marker=f"{id(self)}-{pod.id}"
        )

    async def _list_pods(self, request: web.Request) -> web.Response:
        pods = [self._pod_json(p) for p in self.pods.values() if p.terminated_at is None]
        return json_response(200, {"pods": pods})

    def _known(self, request: web.Request) -> FakePod | None:
        pod = self.pods.get(request.match_info["id"])
        return pod if pod is not None and pod.terminated_at is None else None

    async def _get_pod(self, request: web.Request) -> web.Response:
        pod = self._known(request)
        if pod is None:  # a terminated pod is forgotten, as deletePod's description says
            return problem(404, "Not Found", "pod not found")
        return json_response(200, self._pod_json(pod))

    async def _delete_pod(self, request: web.Request) -> web.Response:
        pod = self._known(request)
        if pod is None:
            return problem(404, "Not Found", "pod not found")
        # A pod deleting itself dies before it reads the answer; RunPod still finishes the job,
        # so the client's disconnect (handler cancellation) must not stop the termination.
        await asyncio.shield(self._terminate(pod))
        return web.Response(status=204)

    async def _terminate(self, pod: FakePod) -> None:
        if pod.sim is not None:
            await asyncio.to_thread(pod.sim.kill)
        self._stop_billing(pod)
        pod.terminated_at = time.time()

    async def _pod_action(self, request: web.Request) -> web.Response:
        pod = self._known(request)
        if pod is None:
            return problem(404, "Not Found", "pod not found")
        action = request[JSON_BODY]["action"]
        status = pod.status(self.provision_s)
        if action not in ACTIONS_BY_STATUS[status]:
            return problem(409, "Conflict", f"cannot {action} a pod that is {status}")
        if action == "start" and self.faults.stock.get(pod.gpu["id"], "HIGH") == "NONE":
            return problem(400, "Bad Request", NO_STOCK_DETAIL)  # its machine's GPUs are taken
        if action == "terminate":
            await self._terminate(pod)
            return web.Response(status=204)
        if pod.sim is not None:
            await asyncio.to_thread(pod.sim.kill)
        self._stop_billing(pod)
        pod.stopped = action == "stop"
        if action in ("start", "restart"):
            pod.error = False
            pod.billing_since = time.time()
            await asyncio.to_thread(self._boot, pod)
        return json_response(200, self._pod_json(pod))

    async def _pod_logs(self, request: web.Request) -> web.StreamResponse:
        pod = self._known(request)
        if pod is None:
            return problem(404, "Not Found", "pod not found")
        tail = int(request.query.get("tail", "100"))
        lines = pod.sim.log_lines(tail) if pod.sim is not None else []
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for number, line in enumerate(lines, 1):
            ts = _iso(time.time())
            data = json.dumps({"ts": ts, "source": "container", "line": line})
            await response.write(f"id: {ts}/{number:012d}\ndata: {data}\n\n".encode())
        await response.write_eof()
        return response

    # -- catalog and billing -------------------------------------------------------------------

    async def _gpu_types(self, request: web.Request) -> web.Response:
        with_stock = "AVAILABILITY" in request.query.get("include", "")
        gpus = []
        for row in self._gpu_table:
            gpu: dict[str, Any] = {
                "id": row["id"],
                "name": row["name"],
                "pool": None,
                "manufacturer": row["manufacturer"],
                "memory": row["memory_gb"],
                "secure": row["secure_price"] is not None,
                "community": row["community_price"] is not None,
                "price": {
                    "secure": row["secure_price"] or 0.0,
                    "community": row["community_price"] or 0.0,
                },
                "maxCount": {
                    "secure": row["max_count_secure"],
                    "community": row["max_count_community"],
                },
            }
            if with_stock:
                level = self.faults.stock.get(row["id"], "HIGH")
                gpu["availability"] = level
                if level != "NONE":
                    gpu["dataCenters"] = [
                        {
                            "id": DATA_CENTER,
                            "name": "Simulated, this machine",
                            "availability": level,
                        }
                    ]
            gpus.append(gpu)
        return json_response(200, {"gpus": gpus})

    async def _pod_billing(self, request: web.Request) -> web.Response:
        wanted = request.query.get("podId")
        now = time.time()
        start = min([p.created for p in self.pods.values()] or [now])
        records: list[dict[str, Any]] = []
        for pod in self.pods.values():
            if wanted and pod.id != wanted:
                continue
            seconds = pod.billed_s + (now - pod.billing_since if pod.billing_since else 0.0)
            amount = round(pod.price * seconds / 3600, 6)
            records.append(
                {
                    "startTime": _iso(start),
                    "endTime": _iso(now),
                    "podId": pod.id,
                    "totalAmount": amount,
                    "gpuAmount": amount,
                    "cpuAmount": 0,
                    "diskAmount": 0,
                }
            )
        total = sum(r["totalAmount"] for r in records)
        metadata = {
            "query": {
                "startTime": _iso(start),
                "endTime": _iso(now),
                "bucketSize": request.query.get("bucketSize", "day"),
                "podId": wanted,
            },
            "recordCount": len(records),
            "uniquePodCount": len(records),
            "totals": {"totalAmount": total, "gpuAmount": total, "cpuAmount": 0, "diskAmount": 0},
        }
        return json_response(200, {"records": records, "metadata": metadata})


_TITLES = {
    400: "Bad Request",
    402: "Payment Required",
    403: "Forbidden",
    422: "Unprocessable Entity",
}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An RFC 9457 problem answer, as RunPod sends them."""
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/problem+json",
        headers=headers,
    )


def json_response(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(14))


@contextlib.contextmanager
def fake_runpod_server(
    workdir: Path, schema: dict[str, Any] | None = None, **options: Any
) -> Iterator[FakeRunPod]:
    """A running fake; on leaving, fails the test if a request or answer broke the schema, a
    pod was left not terminated, or a simulated pod's process is still alive."""
    fake = FakeRunPod(schema if schema is not None else load_schema(), workdir, **options)
    fake.start()
    try:
        yield fake
    finally:
        found = fake.problems()
        fake.stop()
    if found:
        pytest.fail("the fake RunPod server found:\n  " + "\n  ".join(found), pytrace=False)
