"""The pod agent as a real process on 127.0.0.1: token, uploads, a real tiny run, cancel,
artifacts, self-termination. RunPod itself is replaced only where it must be: a tiny aiohttp
server stands in for its DELETE /v2/pods/{id}."""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import socket
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.core.runpod import bootstrap, pod_agent
from app.core.runpod.agent_client import AgentClient
from app.core.runpod.client import RunPodClient
from app.core.runpod.models import PodRequest
from app.core.runpod.trainer_bundle import build_trainer_bundle
from tests.runpod.agent_fixtures import (
    AGENT_FILE,
    REPO_ROOT,
    AgentProcess,
    launch_agent,
    running_agent,
    tiny_run_config,
)
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod

DATASET = REPO_ROOT / "resources/datasets/demo-chat.jsonl"
# The agent's size packed for the pod's env: far under Linux's 128 KiB for one variable.
ENV_VAR_BUDGET = 32 * 1024
ENDPOINTS = [
    ("GET", "/health"),
    ("GET", "/files/config.json"),
    ("PUT", "/files/config.json?offset=0"),
    ("POST", "/files/config.json/done"),
    ("POST", "/start"),
    ("GET", "/events?after=0"),
    ("GET", "/log?after=0"),
    ("POST", "/cancel"),
    ("GET", "/artifacts"),
    ("GET", "/artifacts/events.jsonl?offset=0&length=10"),
    ("POST", "/collected"),
    ("GET", "/no-such-endpoint"),
    ("DELETE", "/health"),
]


def raw_request(
    agent: AgentProcess, method: str, path: str, *, token: str | None = None, body: bytes = b""
) -> tuple[int, bytes]:
    """One request with the path sent exactly as given (httpx would normalise '..')."""
    conn = http.client.HTTPConnection(agent.url.removeprefix("http://"), timeout=10)
    headers = {"Content-Length": str(len(body))}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def agent(tmp_path: Path) -> Any:
    with running_agent(tmp_path / "pod") as process:
        yield process


# -- the file itself --------------------------------------------------------------------------


def test_agent_is_standard_library_only_and_fits_in_one_env_var() -> None:
    source = AGENT_FILE.read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module
            imported.add(node.module.split(".")[0])
    assert imported, "the parser found no imports at all"
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    packed = base64.b64encode(zlib.compress(source.encode(), 9))
    print(f"pod_agent.py: {len(source)} bytes, {len(packed)} compressed+base64")
    assert len(packed) < ENV_VAR_BUDGET


# -- the token --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_every_endpoint_refuses_a_missing_or_wrong_token(agent: AgentProcess, token: str) -> None:
    for method, path in ENDPOINTS:
        status, body = raw_request(agent, method, path, token=token, body=b"{}")
        assert status == 401, (method, path)
        assert json.loads(body) == {"error": "unauthorized"}, (method, path)
    # near misses: the token with another scheme, or with a character more
    for header in (f"Basic {agent.token}", f"Bearer {agent.token}x", agent.token):
        r = httpx.get(f"{agent.url}/health", headers={"Authorization": header})
        assert r.status_code == 401
    status, body = raw_request(agent, "GET", "/health", token=agent.token)
    assert status == 200 and json.loads(body)["phase"] == "waiting"
    assert agent.token not in agent.stderr()


# -- uploads ----------------------------------------------------------------------------------


def test_a_cut_upload_resumes_and_is_verified(agent: AgentProcess, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "dataset.jsonl").write_bytes(data)
    auth = {"Authorization": f"Bearer {agent.token}"}
    # a request cut in the middle of its body: the agent keeps what arrived
    host, port = agent.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            b"PUT /files/dataset.jsonl?offset=0 HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {agent.token}\r\nContent-Length: 200000\r\n\r\n".encode()
            + data[:120_000]
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        held = httpx.get(f"{agent.url}/files/dataset.jsonl", headers=auth).json()["size"]
        if held == 120_000:
            break
        time.sleep(0.05)
    assert held == 120_000
    # resuming anywhere but at the held size is refused with the size to resume from
    r = httpx.put(f"{agent.url}/files/dataset.jsonl?offset=5000", headers=auth, content=b"x")
    assert r.status_code == 409 and r.json()["size"] == 120_000

    seen_offsets: list[int] = []

    async def scenario() -> str:
        async with AgentClient(agent.url, agent.token, chunk_bytes=64_000) as client:
            return await client.upload(
                "dataset.jsonl",
                tmp_path / "dataset.jsonl",
                lambda done, _: seen_offsets.append(done),
            )

    digest = asyncio.run(scenario())
    assert seen_offsets[0] == 120_000 + 64_000  # resumed, not restarted
    assert (agent.home / "files/dataset.jsonl").read_bytes() == data
    state = httpx.get(f"{agent.url}/files/dataset.jsonl", headers=auth).json()
    assert state == {"name": "dataset.jsonl", "size": len(data), "sha256": digest}


def test_a_checksum_mismatch_is_refused_and_the_copy_dropped(agent: AgentProcess) -> None:
    auth = {"Authorization": f"Bearer {agent.token}"}
    r = httpx.put(f"{agent.url}/files/config.json?offset=0", headers=auth, content=b"{}")
    assert r.status_code == 200
    r = httpx.post(
        f"{agent.url}/files/config.json/done", headers=auth, json={"sha256": "0" * 64, "size": 2}
    )
    assert r.status_code == 409 and r.json()["error"] == "checksum_mismatch"
    assert not (agent.home / "files/config.json").exists()
    # and start refuses without a verified config
    r = httpx.post(f"{agent.url}/start", headers=auth, json={"execution_id": "x", "env": {}})
    assert r.status_code == 409 and r.json()["error"] == "missing_file"
    # a verified config that is not a run config is refused by name, not with a 500
    r = httpx.put(f"{agent.url}/files/config.json?offset=0", headers=auth, content=b"[1]")
    digest = hashlib.sha256(b"[1]").hexdigest()
    r = httpx.post(
        f"{agent.url}/files/config.json/done", headers=auth, json={"sha256": digest, "size": 3}
    )
    assert r.status_code == 200 and r.json()["verified"]
    r = httpx.post(f"{agent.url}/start", headers=auth, json={"execution_id": "x", "env": {}})
    assert r.status_code == 422 and "config.json" in r.json()["detail"]


def test_no_path_leads_outside_the_agents_folders(agent: AgentProcess) -> None:
    (agent.home / "output/events.jsonl").write_text('{"seq": 1, "kind": "metric", "data": {}}\n')
    (agent.home / "secret.txt").write_text("not for download")
    for path in (
        "/artifacts/../../etc/passwd",
        "/artifacts/%2E%2E/%2E%2E/etc/passwd",
        "/artifacts/..%2Fsecret.txt",
        "/artifacts/%2Fetc%2Fpasswd",
        "/artifacts/..",
    ):
        status, body = raw_request(agent, "GET", path, token=agent.token)
        assert status == 404, path
        assert b"root:" not in body and b"not for download" not in body
    for name in ("..%2F..%2Fetc%2Fpasswd", "trainer.sh", "config.json.bak", "..%2Fsecret.txt"):
        status, _ = raw_request(
            agent, "PUT", f"/files/{name}?offset=0", token=agent.token, body=b"x"
        )
        assert status == 404, name
    status, body = raw_request(agent, "GET", "/artifacts/events.jsonl", token=agent.token)
    assert status == 200 and body.startswith(b'{"seq": 1')


def test_oversized_requests_are_refused(agent: AgentProcess) -> None:
    # refused on the announced length, before a byte of the body is read: the test sends none
    # (a client still writing a body when the agent answers and closes gets a broken pipe)
    for method, path, limit in (
        ("POST", "/start", pod_agent.MAX_JSON_BYTES),
        ("PUT", "/files/dataset.jsonl?offset=0", pod_agent.MAX_CHUNK_BYTES),
    ):
        conn = http.client.HTTPConnection(agent.url.removeprefix("http://"), timeout=10)
        try:
            conn.putrequest(method, path)
            conn.putheader("Authorization", f"Bearer {agent.token}")
            conn.putheader("Content-Length", str(limit + 1))
            conn.endheaders()
            assert conn.getresponse().status == 413, path
        finally:
            conn.close()


# -- the trainer command and its environment ---------------------------------------------------


def test_trainer_command_uses_every_gpu_through_the_trainers_launcher() -> None:
    one = pod_agent.trainer_command("py", Path("run.json"), "ex1", 1)
    assert one == ["py", "-m", "trainer", "--config", "run.json", "--execution-id", "ex1"]
    four = pod_agent.trainer_command("py", Path("run.json"), "ex1", 4)
    # the trainer re-runs itself under `accelerate launch --multi_gpu --num_processes 4`
    assert four == [*one, "--num-processes", "4"]


def test_installed_requirements_are_not_installed_again() -> None:
    import importlib.metadata

    have = importlib.metadata.version("pydantic")
    found = pod_agent.installed_specs(
        sys.executable, [f"pydantic=={have}", "pydantic==0.0.1", "surely-not-here==1.0"]
    )
    assert found == [f"pydantic=={have}"]


# -- a real tiny run --------------------------------------------------------------------------

RUN_ENV = {"JOB_ID": "job-agent-1", "JOB_TOKEN": "tok-" + "j" * 20, "USER_ID": "u1"}


async def upload_run(client: AgentClient, tmp: Path, cfg: dict[str, Any]) -> list[str]:
    bundle = build_trainer_bundle(cache=tmp / "bundle-cache")
    (tmp / "config.json").write_text(json.dumps(cfg))
    await client.upload("trainer.tar.gz", bundle.path)
    await client.upload("config.json", tmp / "config.json")
    await client.upload("dataset.jsonl", DATASET)
    return list(bundle.requirements)


async def wait_phase(client: AgentClient, phases: set[str], limit_s: float = 120) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        health = await client.health()
        if health.phase in phases:
            return health.phase
        await asyncio.sleep(0.2)
    raise AssertionError(f"the agent stayed in {health.phase!r}")


def trainer_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One tiny LoRA run through the agent, from the uploaded trainer package; reused below."""
    tmp = tmp_path_factory.mktemp("agent-run")
    # the install step runs for real: every pinned requirement is found here, so pip is not
    extra = {
        "RUNPOD_API_KEY": "pod-scoped-key-123",
        "RUNPOD_POD_ID": "pod1",
        "PYTHONPATH": "",
        "TUNEDECK_AGENT_SKIP_INSTALL": "",
    }
    agent = launch_agent(tmp / "pod", extra_env=extra)

    async def scenario() -> dict[str, Any]:
        async with AgentClient(agent.url, agent.token) as client:
            requirements = await upload_run(client, tmp, tiny_run_config(6))
            started = await client.start("exec-1", RUN_ENV, requirements, num_gpus=1)
            await wait_phase(client, {"training", "finished", "failed"})
            pid = (await client.health()).trainer_pid
            assert pid is not None
            environ = trainer_environ(pid)  # read while it trains
            phase = await wait_phase(client, {"finished", "failed"})
            log = (await client.log(0)).text
            return {"started": started, "environ": environ, "phase": phase, "log": log}

    try:
        result = asyncio.run(scenario())
        yield agent, tmp, result
    finally:
        agent.stop()


@pytest.mark.slow  # a real training subprocess: torch's start-up alone is seconds
def test_the_run_trains_from_the_uploaded_package(finished_run: Any) -> None:
    agent, _, result = finished_run
    assert result["phase"] == "finished", result["log"][-3000:]
    assert result["started"]["phase"] == "installing"
    assert "requirements present; nothing to install" in result["log"]
    environ = result["environ"]
    for name, value in RUN_ENV.items():
        assert environ[name] == value
    for secret in ("RUNPOD_API_KEY", "TUNEDECK_AGENT_TOKEN", "TUNEDECK_AGENT_SRC"):
        assert secret not in environ
    assert "pod-scoped-key-123" not in "\0".join(environ.values())
    assert environ["PYTHONPATH"].split(os.pathsep)[0] == str(agent.home / "work/package")
    assert (agent.home / "work/package/trainer/__main__.py").is_file()


@pytest.mark.slow  # a real training subprocess: torch's start-up alone is seconds
def test_events_read_from_any_position_have_no_gap_or_repeat(finished_run: Any) -> None:
    agent, _, _ = finished_run

    async def read_all(after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        async with AgentClient(agent.url, agent.token) as client:
            events: list[dict[str, Any]] = []
            for _ in range(200):  # bounded
                page = await client.events(after, limit)
                if not page.events:
                    return events, page.last_seq
                events += page.events
                after = page.next_after or after
        raise AssertionError("too many pages")

    everything, last = asyncio.run(read_all(0, 1000))
    seqs = [e["seq"] for e in everything]
    assert seqs == list(range(1, last + 1)) and last > 6
    assert {e["job_id"] for e in everything} == {RUN_ENV["JOB_ID"]}
    steps = [e["data"]["step"] for e in everything if e["kind"] == "metric"]
    assert max(steps) == 6
    alerts = [e["data"]["type"] for e in everything if e["kind"] == "alert"]
    assert alerts[0] == "job_started" and alerts[-1] == "job_completed"
    for after, limit in ((0, 3), (4, 2), (last - 1, 10), (last, 10)):
        page, _ = asyncio.run(read_all(after, limit))
        assert [e["seq"] for e in page] == list(range(after + 1, last + 1))


@pytest.mark.slow  # a real training subprocess: torch's start-up alone is seconds
def test_artifacts_download_verified_and_the_adapter_loads(
    finished_run: Any, tmp_path: Path, tiny_model_dir: Path
) -> None:
    agent, _, _ = finished_run
    dest = tmp_path / "collected"

    async def scenario() -> list[Any]:
        async with AgentClient(agent.url, agent.token, chunk_bytes=50_000) as client:
            listed = await client.artifacts()
            for artifact in listed:
                await client.download(artifact, dest / artifact.path)
            with_checkpoints = await client.artifacts(checkpoints=True)
            await client.collected()
            return [listed, with_checkpoints]

    listed, with_checkpoints = asyncio.run(scenario())
    names = {a.path for a in listed}
    assert {"adapter_config.json", "adapter_model.safetensors", "events.jsonl"} <= names
    assert "run_summary.json" in names
    assert not any(n.startswith("checkpoint-") for n in names)
    assert any(a.path.startswith("checkpoint-") for a in with_checkpoints)
    for artifact in listed:
        assert hashlib.sha256((dest / artifact.path).read_bytes()).hexdigest() == artifact.sha256
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    assert PeftConfig.from_pretrained(dest).peft_type == "LORA"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), dest)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert httpx.get(
        f"{agent.url}/health", headers={"Authorization": f"Bearer {agent.token}"}
    ).json()["collected"]


@pytest.mark.slow  # a real training subprocess: torch's start-up alone is seconds
def test_the_run_cannot_be_started_twice_or_files_changed(finished_run: Any) -> None:
    agent, _, _ = finished_run
    auth = {"Authorization": f"Bearer {agent.token}"}
    r = httpx.post(f"{agent.url}/start", headers=auth, json={"execution_id": "again", "env": {}})
    assert r.status_code == 409
    r = httpx.put(f"{agent.url}/files/config.json?offset=0", headers=auth, content=b"{}")
    assert r.status_code == 409


def test_a_failed_install_fails_the_run_and_says_so(tmp_path: Path) -> None:
    # PIP_NO_INDEX: pip looks nowhere but here, so the missing package fails at once, offline
    env = {"TUNEDECK_AGENT_SKIP_INSTALL": "", "PIP_NO_INDEX": "1"}

    async def scenario(agent: AgentProcess) -> tuple[str, str, str]:
        async with AgentClient(agent.url, agent.token) as client:
            (tmp_path / "config.json").write_text(json.dumps(tiny_run_config(2)))
            await client.upload("config.json", tmp_path / "config.json")
            await client.start("exec-p", {}, ["surely-not-installed-pkg==1.0"])
            phase = await wait_phase(client, {"finished", "failed"}, 120)
            return phase, (await client.health()).error, (await client.log()).text

    with running_agent(tmp_path / "pod", extra_env=env) as agent:
        phase, error, log = asyncio.run(scenario(agent))
    assert phase == "failed" and "pip install failed" in error
    assert "installing 1 of 1 requirements" in log and "surely-not-installed-pkg" in log


def test_the_trainer_never_gets_runpod_variables(agent: AgentProcess) -> None:
    r = httpx.post(
        f"{agent.url}/start",
        headers={"Authorization": f"Bearer {agent.token}"},
        json={"execution_id": "x", "env": {"RUNPOD_API_KEY": "k"}},
    )
    assert r.status_code == 422 and "RUNPOD_API_KEY" in r.json()["detail"]


@pytest.mark.slow  # a real training subprocess: torch's start-up alone is seconds
def test_cancel_mid_run_checkpoints_and_exits_0(tmp_path: Path) -> None:
    async def scenario(agent: AgentProcess) -> tuple[str, int | None, list[str], list[str]]:
        async with AgentClient(agent.url, agent.token) as client:
            await upload_run(client, tmp_path, tiny_run_config(500, save_steps=400))
            await client.start("exec-c", RUN_ENV)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                page = await client.events(0)
                if any(e["kind"] == "metric" for e in page.events):
                    break
                assert page.phase in ("installing", "training"), page
                await asyncio.sleep(0.2)
            assert await client.cancel()
            phase = await wait_phase(client, {"finished", "failed"})
            health = await client.health()
            page = await client.events(0, 5000)
            alerts = [e["data"]["type"] for e in page.events if e["kind"] == "alert"]
            files = [a.path for a in await client.artifacts(checkpoints=True)]
            return phase, health.exit_code, alerts, files

    with running_agent(tmp_path / "pod", extra_env={"PYTHONPATH": ""}) as agent:
        phase, code, alerts, files = asyncio.run(scenario(agent))
    assert (phase, code) == ("finished", 0)
    assert alerts[-1] == "job_cancelled"
    assert any(
        f.startswith("checkpoint-") and f.endswith("adapter_model.safetensors") for f in files
    )


# -- self-termination -------------------------------------------------------------------------


class FakeDelete:
    """Stands in for RunPod's DELETE /v2/pods/{id}: records calls; the first answer is 503."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.match_info["pod_id"], request.headers.get("Authorization", "")))
        if len(self.calls) == 1:
            return web.json_response({"title": "busy"}, status=503)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_delete("/v2/pods/{pod_id}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def self_guard_env(fake: FakeDelete, **caps: str) -> dict[str, str]:
    return {
        "TUNEDECK_RUNPOD_API_URL": fake.url,
        "RUNPOD_POD_ID": "pod-xyz",
        "RUNPOD_API_KEY": "pod-scoped-key-9",
        **caps,
    }


def test_a_finished_run_not_collected_terminates_its_own_pod(tmp_path: Path) -> None:
    async def scenario() -> tuple[FakeDelete, int | None, str]:
        fake = FakeDelete()
        await fake.start()
        env = self_guard_env(fake, TUNEDECK_AGENT_GRACE_S="1", TUNEDECK_AGENT_IDLE_CAP_S="600")
        agent = await asyncio.to_thread(launch_agent, tmp_path / "pod", extra_env=env)
        try:
            async with AgentClient(agent.url, agent.token) as client:
                # a config the trainer refuses: the run ends (failed) within seconds
                (tmp_path / "config.json").write_text('{"method": "no-such-method"}')
                await client.upload("config.json", tmp_path / "config.json")
                await client.start("exec-g", {"JOB_ID": "job-g"})
                assert await wait_phase(client, {"finished", "failed"}, 60) == "failed"
            code = await asyncio.to_thread(agent.proc.wait, 30)
        finally:
            agent.stop()
            await fake.stop()
        return fake, code, agent.stderr()

    fake, code, stderr = asyncio.run(scenario())
    assert code == 0
    assert fake.calls == [("pod-xyz", "Bearer pod-scoped-key-9")] * 2  # 503, then retried
    assert "has not collected it" in stderr and "pod-scoped-key-9" not in stderr


def test_an_app_gone_silent_while_nothing_trains_terminates_the_pod(tmp_path: Path) -> None:
    async def scenario() -> tuple[FakeDelete, int | None, float]:
        fake = FakeDelete()
        await fake.start()
        env = self_guard_env(fake, TUNEDECK_AGENT_IDLE_CAP_S="1.5")
        started = time.monotonic()
        agent = await asyncio.to_thread(launch_agent, tmp_path / "pod", extra_env=env)
        try:
            code = await asyncio.to_thread(agent.proc.wait, 30)
        finally:
            agent.stop()
            await fake.stop()
        return fake, code, time.monotonic() - started

    fake, code, elapsed = asyncio.run(scenario())
    assert code == 0 and len(fake.calls) == 2 and elapsed >= 1.5


def test_requests_keep_an_idle_pod_alive(tmp_path: Path) -> None:
    env = {"TUNEDECK_AGENT_IDLE_CAP_S": "1.5"}  # no pod id: it only exits, asks nobody
    with running_agent(tmp_path / "pod", extra_env=env) as agent:
        auth = {"Authorization": f"Bearer {agent.token}"}
        for _ in range(12):  # 3 s of polling, twice the cap
            assert httpx.get(f"{agent.url}/health", headers=auth).status_code == 200
            time.sleep(0.25)
        assert agent.proc.poll() is None
        # unauthorised requests do not count as the app being there
        deadline = time.monotonic() + 10
        while agent.proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):  # it may be gone meanwhile
                httpx.get(f"{agent.url}/health")
            time.sleep(0.2)
        assert agent.proc.poll() == 0
        assert "not on a pod" in agent.stderr()


def test_agent_refuses_to_start_without_a_real_token(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with 2"):
        launch_agent(tmp_path / "pod", extra_env={"TUNEDECK_AGENT_TOKEN": "short"})


def test_on_the_fake_runpod_an_abandoned_pod_deletes_itself_with_its_own_key(
    fake_runpod: FakeRunPod,
) -> None:
    """The pod as RunPod would start it (create request's args + env), the app gone: the agent
    deletes its own pod with the pod-scoped key the fake gave it, never the account key."""
    fake_runpod.extra_pod_env.update({"TUNEDECK_AGENT_HOME": "agent-home"})
    args, env = bootstrap.agent_start("a" * 32, grace_s=600, idle_cap_s=1.0, python=sys.executable)
    request = PodRequest(
        name="abandoned",
        image=bootstrap.DEFAULT_IMAGE,
        gpu_type_id="NVIDIA RTX A5000",
        ports=["8765/http"],
        env=env,
        args=args,
    )

    async def scenario() -> str:
        async with RunPodClient(ACCOUNT_KEY, base_url=fake_runpod.url) as client:
            pod = await client.create_pod(request)
        deadline = time.monotonic() + 30
        while pod.id in fake_runpod.live_pods() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return pod.id

    pod_id = asyncio.run(scenario())
    assert fake_runpod.pod_status(pod_id) == "TERMINATED"
    deletes = [r for r in fake_runpod.requests_to(f"/v2/pods/{pod_id}") if r.method == "DELETE"]
    assert len(deletes) == 1
    assert deletes[0].headers["Authorization"] == f"Bearer {fake_runpod.pods[pod_id].key}"
    assert ACCOUNT_KEY not in deletes[0].headers["Authorization"]


def test_the_agent_takes_the_dataset_names_the_trainer_reads() -> None:
    from app.core.runpod.pod_agent import UPLOAD_NAME
    from trainer.data.readers import file_kind

    for name in ("dataset.jsonl", "eval_dataset.csv.gz", "dataset.json.gz", "dataset.parquet"):
        assert UPLOAD_NAME.fullmatch(name) and file_kind(name), name
    for name in ("dataset.parquet.gz", "dataset.txt", "../dataset.jsonl", "dataset.jsonl.zip"):
        assert not UPLOAD_NAME.fullmatch(name), name
