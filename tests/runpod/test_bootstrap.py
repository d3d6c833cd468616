"""The agent's trip to a pod (args + env of the create request) and the trainer bundle."""

from __future__ import annotations

import asyncio
import importlib.metadata
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.runpod import bootstrap, pod_agent, trainer_bundle
from app.core.runpod.agent_client import AgentClient, proxy_url
from app.core.runpod.models import PodRequest
from app.core.runpod.trainer_bundle import (
    BundleError,
    build_trainer_bundle,
    pinned_requirements,
    trainer_source_dir,
)
from tests.runpod.agent_fixtures import free_port
from tests.runpod.schema import SchemaChecker

TOKEN = "t" * 32


def test_the_start_command_and_env_fit_the_published_create_request(
    runpod_schema: dict[str, Any],
) -> None:
    args, env = bootstrap.agent_start(TOKEN, port=8765, grace_s=900, idle_cap_s=1800)
    assert isinstance(args, str)  # CreatePodRequest.args is one string
    request = PodRequest(
        name="tunedeck-job-1",
        image=bootstrap.DEFAULT_IMAGE,
        gpu_type_id="NVIDIA GeForce RTX 4090",
        ports=["8765/http"],
        env=env,
        args=args,
    )
    body = request.to_json()
    checker = SchemaChecker(runpod_schema)
    assert checker.errors(body, checker.component("CreatePodRequest")) == []
    assert (body["args"], body["env"]) == (args, env)
    assert len(env) + bootstrap.RUNPOD_SET_VARIABLES <= bootstrap.POD_ENV_LIMIT
    assert env["TUNEDECK_AGENT_TOKEN"] == TOKEN
    assert (env["TUNEDECK_AGENT_GRACE_S"], env["TUNEDECK_AGENT_IDLE_CAP_S"]) == ("900", "1800")
    assert len(env[bootstrap.SOURCE_VARIABLE]) < 32 * 1024
    # the same argv whether a shell or shell-like quoting splits it
    assert shlex.split(args) == ["python3", "-c", bootstrap.BOOTSTRAP_CODE]
    assert not re.search(r'[$`\\"]', bootstrap.BOOTSTRAP_CODE)
    assert "RUNPOD_API_KEY" not in env


def test_the_start_command_runs_the_agent_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    args, env = bootstrap.agent_start(
        TOKEN, port=port, grace_s=60, idle_cap_s=60, python=sys.executable
    )
    pod_env = {
        "PATH": os.environ["PATH"],
        **env,
        "TUNEDECK_AGENT_HOST": "127.0.0.1",
        "TUNEDECK_AGENT_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.Popen(
        ["/bin/sh", "-c", args], env=pod_env, cwd=tmp_path, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 15
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = asyncio.run(_health(f"http://127.0.0.1:{port}"))
                break
            except Exception:
                time.sleep(0.1)
        assert health is not None and health.phase == "waiting"
        assert health.agent_version == pod_agent.AGENT_VERSION
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # sh may not exec python: the group holds both
        proc.wait(10)


async def _health(url: str) -> Any:
    async with AgentClient(url, TOKEN, timeout_s=2) as client:
        return await client.health()


def test_a_simulated_port_mapping_decides_where_the_agent_listens() -> None:
    assert pod_agent.listen_port({"TUNEDECK_AGENT_PORT": "8765"}) == 8765
    assert pod_agent.listen_port({}) == 8765
    env = {"TUNEDECK_AGENT_PORT": "8765", "TUNEDECK_SIM_PORT_8765": "40123"}
    assert pod_agent.listen_port(env) == 40123


def test_env_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at most 50"):
        bootstrap.check_pod_env({f"V{i}": "x" for i in range(45)})
    with pytest.raises(ValueError, match="BIG"):
        bootstrap.check_pod_env({"BIG": "x" * 200_000})
    with pytest.raises(ValueError, match="16 characters"):
        bootstrap.agent_start("short", grace_s=1, idle_cap_s=1)


def test_the_default_image_matches_the_trainers_torch_major_version() -> None:
    major = importlib.metadata.version("torch").split(".")[0]
    image_torch = re.search(r"torch(\d)(\d)\d", bootstrap.DEFAULT_IMAGE)
    assert bootstrap.DEFAULT_IMAGE.startswith("runpod/pytorch:") and image_torch
    assert image_torch.group(1) == major


# -- the trainer bundle ------------------------------------------------------------------------


def test_the_bundle_holds_the_trainer_and_pins_this_installs_versions(tmp_path: Path) -> None:
    bundle = build_trainer_bundle(cache=tmp_path)
    with tarfile.open(bundle.path) as tar:
        names = tar.getnames()
        assert all(n.startswith("trainer/") for n in names)
        main = tar.extractfile("trainer/__main__.py")
        assert main is not None
        assert main.read() == (trainer_source_dir() / "__main__.py").read_bytes()
    assert not any("__pycache__" in n or n.startswith("app/") for n in names)
    pins = dict(
        re.match(r"([A-Za-z0-9_.-]+)(.*)", spec).groups()  # type: ignore[union-attr]
        for spec in bundle.requirements
    )
    for name in ("transformers", "trl", "peft", "datasets", "accelerate", "pydantic"):
        assert pins[name] == "==" + importlib.metadata.version(name)
    major = int(importlib.metadata.version("torch").split(".")[0])
    assert pins["torch"] == f">={major},<{major + 1}"  # the image's CUDA build stays
    assert not {"PySide6-Essentials", "pyqtgraph", "qasync", "keyring"} & set(pins)
    # cached: the same content is the same file, not rebuilt
    again = build_trainer_bundle(cache=tmp_path)
    assert (again.path, again.sha256) == (bundle.path, bundle.sha256)
    assert again.path.stat().st_mtime_ns == bundle.path.stat().st_mtime_ns
    # and what the agent checks before calling pip finds all of it here
    assert pod_agent.installed_specs(sys.executable, list(bundle.requirements)) == list(
        bundle.requirements
    )


def test_a_training_environment_without_the_stack_is_named(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="lacks trl"):
        pinned_requirements({"trl": None, "peft": "0.1"})
    # another Python is asked, not this process: a bare venv has none of the stack
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(BundleError, match=r"lacks .*peft.*torch.*'tunedeck\[train\]'"):
        build_trainer_bundle(str(bare / "bin/python"), cache=tmp_path / "cache")


def test_a_frozen_app_sends_the_training_environments_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen app has no trainer sources on disk: only the training Python has them.
    monkeypatch.setattr(trainer_bundle.importlib.util, "find_spec", lambda name: None)
    monkeypatch.chdir(tmp_path)
    env_trainer = trainer_source_dir(sys.executable)
    assert (env_trainer / "__main__.py").is_file()
    assert build_trainer_bundle(sys.executable, cache=tmp_path).size > 10_000


def test_the_agent_refuses_an_archive_that_escapes_its_folder(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "trainer.tar.gz"
    archive.write_bytes(raw.getvalue())
    with pytest.raises(RuntimeError, match="refusing member"):
        pod_agent.unpack(archive, tmp_path / "package")
    assert not (tmp_path / "escaped.py").exists()


def test_proxy_url_follows_the_template() -> None:
    assert proxy_url("abc123", 8765) == "https://abc123-8765.proxy.runpod.net"
    template = "http://127.0.0.1:9/proxy/{pod_id}-{port}"
    assert proxy_url("abc123", 8765, template) == "http://127.0.0.1:9/proxy/abc123-8765"
