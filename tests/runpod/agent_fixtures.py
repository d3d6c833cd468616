"""A real pod agent process on 127.0.0.1 for tests (no RunPod involved)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.core.runpod import pod_agent

AGENT_FILE = Path(pod_agent.__file__)
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AgentProcess:
    url: str
    token: str
    home: Path
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def trainer_pid(self) -> int | None:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(
                f"{self.url}/health", headers={"Authorization": f"Bearer {self.token}"}, timeout=5
            )
            pid = r.json().get("trainer_pid")
            return int(pid) if pid else None
        return None

    def stop(self) -> None:
        pid = self.trainer_pid() if self.proc.poll() is None else None
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def launch_agent(
    home: Path, *, extra_env: dict[str, str] | None = None, argv: list[str] | None = None
) -> AgentProcess:
    """Start ``pod_agent.py`` (or ``argv``) and wait (bounded) until it answers /health."""
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = dict(os.environ)
    env.update(
        {
            "TUNEDECK_AGENT_TOKEN": token,
            "TUNEDECK_AGENT_PORT": str(port),
            "TUNEDECK_AGENT_HOST": "127.0.0.1",
            "TUNEDECK_AGENT_HOME": str(home),
            "TUNEDECK_AGENT_SKIP_INSTALL": "1",
            "TUNEDECK_AGENT_PYTHON": sys.executable,
            # the trainer imports `trainer` from the repository, as an installed one would
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    stderr_path = home.parent / f"{home.name}-agent.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            argv or [sys.executable, str(AGENT_FILE)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    agent = AgentProcess(f"http://127.0.0.1:{port}", token, home, proc, stderr_path)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {proc.returncode}: {agent.stderr()}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{agent.url}/health", timeout=1)
            return agent
        time.sleep(0.05)
    agent.stop()
    raise RuntimeError(f"the agent did not listen within 15 s: {agent.stderr()}")


@contextlib.contextmanager
def running_agent(home: Path, **kwargs: object) -> Iterator[AgentProcess]:
    agent = launch_agent(home, **kwargs)  # type: ignore[arg-type]
    try:
        yield agent
    finally:
        agent.stop()


def tiny_run_config(max_steps: int = 6, *, save_steps: int = 3) -> dict[str, object]:
    """demo-sft made tiny: a LoRA adapter (peft can load it), a few steps, a checkpoint."""
    data = json.loads((REPO_ROOT / "resources/presets/demo-sft.json").read_text())
    data["name"] = "agent-test"
    data["adapter"] = {"kind": "lora", "r": 4, "alpha": 8}
    data["training"].update(
        {"max_steps": max_steps, "warmup_steps": 0, "per_device_train_batch_size": 2}
    )
    data["training"]["max_length"] = 64
    data["evaluation"] = {"strategy": "no"}
    data["checkpoint"] = {"save_strategy": "steps", "save_steps": save_steps}
    data["logging"] = {"logging_steps": 1}
    data["runtime"] = {"device": "cpu", "torch_threads": 1}
    return data
