"""The fake RunPod server itself: simulated pods are real local processes with a pod's
environment, reachable through the proxy path, killed on terminate; the pod-scoped key works
for that pod only; the fixture's teardown checks catch what they promise to catch."""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.runpod.client import RunPodClient
from app.core.runpod.errors import RunPodAuthError
from app.core.runpod.models import Pod, PodRequest
from tests.process_state import running
from tests.runpod.fake_runpod import FakeRunPod, fake_runpod_server

# A pod's "service": answers every request with its path, its pid, its environment and the pid
# of a process it started in a session of its own (which a container stop must kill too).
SERVICE = """
import http.server, json, os, subprocess, sys, time
detached = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                            start_new_session=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({"path": self.path, "method": self.command, "pid": os.getpid(),
                           "detached": detached.pid, "env": dict(os.environ),
                           "received": len(self.rfile.read(length))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = answer
    def log_message(self, *args):
        pass
port = int(os.environ.get("TUNEDECK_SIM_PORT_8765", "8765"))
print("serving on", port, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def pod_request(name: str = "sim", **changes: Any) -> PodRequest:
    fields: dict[str, Any] = {
        "name": name,
        "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
        "gpu_type_id": "NVIDIA GeForce RTX 4090",
        "gpu_count": 2,
        "ports": ("8765/http",),
        "env": {"TUNEDECK_AGENT_TOKEN": "tok-123"},
        "args": shlex.join(["python3", "-c", SERVICE]),
    }
    return PodRequest(**{**fields, **changes})


def create(fake: FakeRunPod, request: PodRequest) -> Pod:
    async def main() -> Pod:
        async with RunPodClient(fake.account_key, base_url=fake.url) as client:
            return await client.create_pod(request)

    return asyncio.run(main())


def terminate(fake: FakeRunPod, pod_id: str, key: str | None = None) -> None:
    async def main() -> None:
        async with RunPodClient(key or fake.account_key, base_url=fake.url) as client:
            await client.terminate_pod(pod_id)

    asyncio.run(main())


def proxy_url(fake: FakeRunPod, pod_id: str, path: str = "", port: int = 8765) -> str:
    return fake.proxy_template.format(pod_id=pod_id, port=port) + path


def until_served(fake: FakeRunPod, pod_id: str) -> dict[str, Any]:
    """The service's first answer through the proxy (bounded wait while it starts)."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(proxy_url(fake, pod_id, "/hello?x=1"), timeout=5)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return dict(response.json())
        time.sleep(0.05)


def test_a_simulated_pod_is_reached_through_the_proxy_with_a_pods_environment(
    fake_runpod: FakeRunPod,
) -> None:
    pod = create(fake_runpod, pod_request())
    served = until_served(fake_runpod, pod.id)
    assert (served["path"], served["method"]) == ("/hello?x=1", "GET")
    env = served["env"]
    assert env["RUNPOD_POD_ID"] == pod.id
    assert env["RUNPOD_GPU_COUNT"] == "2"
    assert env["TUNEDECK_AGENT_TOKEN"] == "tok-123"
    assert env["TUNEDECK_RUNPOD_API_URL"] == fake_runpod.url
    assert int(env["TUNEDECK_SIM_PORT_8765"]) != 8765  # a free local port stands for 8765
    # the pod-scoped key, never the account's
    assert env["RUNPOD_API_KEY"] and env["RUNPOD_API_KEY"] != fake_runpod.account_key
    assert fake_runpod.account_key not in "".join(f"{k}={v}" for k, v in env.items())

    upload = httpx.put(proxy_url(fake_runpod, pod.id, "/files/x"), content=b"a" * 100_000)
    assert upload.status_code == 200 and upload.json()["received"] == 100_000
    terminate(fake_runpod, pod.id)


def test_terminate_kills_the_pods_processes_even_outside_its_group(
    fake_runpod: FakeRunPod,
) -> None:
    pod = create(fake_runpod, pod_request())
    served = until_served(fake_runpod, pod.id)
    service, detached = served["pid"], served["detached"]
    assert os.getpgid(detached) != os.getpgid(service)  # it left the pod's process group
    assert {service, detached} <= set(fake_runpod.alive_processes()[pod.id])
    assert running(service) and running(detached)

    terminate(fake_runpod, pod.id)
    assert fake_runpod.alive_processes() == {}
    assert not running(service) and not running(detached)
    assert fake_runpod.pod_status(pod.id) == "TERMINATED"
    assert httpx.get(proxy_url(fake_runpod, pod.id, "/")).status_code == 404
    assert (
        httpx.get(
            f"{fake_runpod.url}/v2/pods/{pod.id}", headers=_bearer(fake_runpod.account_key)
        ).status_code
        == 404
    )


def test_the_pod_scoped_key_deletes_its_own_pod_and_nothing_else(
    fake_runpod: FakeRunPod,
) -> None:
    mine = create(fake_runpod, pod_request("mine"))
    other = create(fake_runpod, pod_request("other", args="sleep 60"))
    pod_key = until_served(fake_runpod, mine.id)["env"]["RUNPOD_API_KEY"]
    api = fake_runpod.url
    headers = _bearer(pod_key)

    assert httpx.get(f"{api}/v2/pods/{mine.id}", headers=headers).status_code == 200
    assert httpx.get(f"{api}/v2/pods/{other.id}", headers=headers).status_code == 403
    assert httpx.delete(f"{api}/v2/pods/{other.id}", headers=headers).status_code == 403
    assert httpx.get(f"{api}/v2/pods", headers=headers).status_code == 403
    assert httpx.get(f"{api}/v2/catalog/gpus", headers=headers).status_code == 403
    refused = httpx.post(
        f"{api}/v2/pods/{mine.id}/action", headers=headers, json={"action": "stop"}
    )
    assert refused.status_code == 403
    assert fake_runpod.pod_status(other.id) == "RUNNING"

    terminate(fake_runpod, mine.id, key=pod_key)  # what the agent's self-guard does
    assert fake_runpod.pod_status(mine.id) == "TERMINATED"
    with pytest.raises(RunPodAuthError):  # still only good for its own (now gone) pod
        terminate(fake_runpod, other.id, key=pod_key)
    terminate(fake_runpod, mine.id, key=pod_key)  # a repeated self-terminate: gone, no error
    terminate(fake_runpod, other.id)


def test_status_follows_the_process_and_an_ended_pod_costs_nothing(
    fake_runpod: FakeRunPod,
) -> None:
    pod = create(fake_runpod, pod_request(args="sleep 0.2"))
    deadline = time.monotonic() + 10
    while fake_runpod.pod_status(pod.id) != "EXITED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_runpod.pod_status(pod.id) == "EXITED"
    answer = httpx.get(
        f"{fake_runpod.url}/v2/pods/{pod.id}", headers=_bearer(fake_runpod.account_key)
    ).json()
    assert (answer["status"], answer["cost"], answer["runtime"]) == ("EXITED", 0.0, None)
    assert answer["actions"] == ["start", "terminate"]
    terminate(fake_runpod, pod.id)


def test_a_pod_can_be_made_to_fail(fake_runpod: FakeRunPod) -> None:
    pod = create(fake_runpod, pod_request(args="sleep 60"))
    fake_runpod.make_pod_fail(pod.id)
    assert fake_runpod.pod_status(pod.id) == "ERROR"
    assert fake_runpod.alive_processes() == {}

    async def read() -> Pod:
        async with RunPodClient(fake_runpod.account_key, base_url=fake_runpod.url) as client:
            return await client.get_pod(pod.id)

    failed = asyncio.run(read())
    assert (failed.status, failed.cost_per_hour, failed.bills_compute) == ("ERROR", 0.0, False)
    terminate(fake_runpod, pod.id)


def test_the_proxy_can_be_unreachable_for_a_while_and_cuts_long_requests(
    fake_runpod: FakeRunPod,
) -> None:
    pod = create(fake_runpod, pod_request())
    until_served(fake_runpod, pod.id)
    fake_runpod.make_proxy_unreachable(pod.id, 0.5, status=503)
    assert httpx.get(proxy_url(fake_runpod, pod.id, "/")).status_code == 503
    time.sleep(0.6)
    assert httpx.get(proxy_url(fake_runpod, pod.id, "/")).status_code == 200

    fake_runpod.proxy.cut_s = 0.3
    started = time.monotonic()
    assert httpx.get(proxy_url(fake_runpod, pod.id, "/slow"), timeout=5).status_code == 524
    assert time.monotonic() - started < 1.4
    assert httpx.get(proxy_url(fake_runpod, pod.id, "/", port=9999)).status_code == 502
    terminate(fake_runpod, pod.id)


def test_a_pod_without_a_start_command_runs_until_terminated(fake_runpod: FakeRunPod) -> None:
    pod = create(fake_runpod, pod_request(args=""))
    assert fake_runpod.pod_status(pod.id) == "RUNNING"
    assert httpx.get(proxy_url(fake_runpod, pod.id, "/")).status_code == 502  # nothing listens
    terminate(fake_runpod, pod.id)


def test_teardown_fails_on_a_pod_left_running_and_its_live_process(
    runpod_schema: dict[str, Any], tmp_path: Path
) -> None:
    with (
        pytest.raises(pytest.fail.Exception) as caught,
        fake_runpod_server(tmp_path, runpod_schema) as fake,
    ):
        pod = create(fake, pod_request(args="sleep 60"))
    text = str(caught.value)
    assert f"pod {pod.id} (sim) was left RUNNING, not terminated" in text
    assert f"simulated pod {pod.id} still has live processes" in text
    assert fake.alive_processes() == {}  # stop() killed it anyway


def test_teardown_fails_on_a_request_the_schema_rejects(
    runpod_schema: dict[str, Any], tmp_path: Path
) -> None:
    with (
        pytest.raises(pytest.fail.Exception) as caught,
        fake_runpod_server(tmp_path, runpod_schema) as fake,
    ):
        answer = httpx.post(
            f"{fake.url}/v2/pods",
            headers=_bearer(fake.account_key),
            json={"name": "x", "image": "i", "gpu": {"id": "NVIDIA L4"}, "gpuTypeId": "x"},
        )
        assert answer.status_code == 422
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert any("gpuTypeId" in e for e in answer.json()["errors"])
    assert "schema: POST /v2/pods: body" in str(caught.value)
    assert "gpuTypeId" in str(caught.value)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_pod_provisions_before_it_runs(runpod_schema: dict[str, Any], tmp_path: Path) -> None:
    with fake_runpod_server(tmp_path, runpod_schema, provision_s=0.5) as fake:
        pod = create(fake, pod_request(args="sleep 30"))
        assert pod.status == "PROVISIONING"  # the create's answer, as RunPod's
        assert pod.raw["startedAt"] is None and pod.raw["runtime"] is None
        assert httpx.get(proxy_url(fake, pod.id, "/")).status_code == 502
        time.sleep(0.6)
        assert fake.pod_status(pod.id) == "RUNNING"
        terminate(fake, pod.id)
