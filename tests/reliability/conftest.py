"""Fixtures for the reliability suite: the app's own parts, for real, on 127.0.0.1.

- ``store``: the app's Store, its SQLite file in tmp_path (where ``tunedeck`` looks too).
- ``app_stack``: ``async with app_stack(...) as stack`` starts the real ReceiverServer, Ingestor
  and LocalLauncher (running ``python -m trainer``) on the current loop; ``stack.requests`` holds
  every request the receiver saw (method, path, headers, body), captured by an aiohttp middleware
  on the real receiver app.
- ``tiny_run``: a RunConfig builder for a short real run of the built-in tiny model on the demo
  chat dataset, its output in tmp_path.
- ``token_job``: a job row with a real per-job token (only its hash is stored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.core import receiver as receiver_module
from app.core.ingest import Ingestor
from app.core.launcher import ReceiverAddress
from app.core.launcher_local import LocalLauncher
from app.core.receiver import ReceiverServer
from app.core.store import Store
from tests.app.fake_jobs import TokenJob, make_job
from trainer.config import RunConfig, parse_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CHAT = REPO / "resources" / "datasets" / "demo-chat.jsonl"
API_KEY = "reliability-receiver-key-0123456789"


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class AppStack:
    store: Store
    ingestor: Ingestor
    server: ReceiverServer
    launcher: LocalLauncher
    requests: list[SeenRequest] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # every line the trainers wrote


AppStackFactory = Callable[..., AbstractAsyncContextManager[AppStack]]


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store()  # the app's own path, under the test's TUNEDECK_DATA_DIR (the CLI finds it)
    yield s
    s.close()


@pytest.fixture
def token_job(store: Store) -> TokenJob:
    return make_job(store)


def _capture_into(seen: list[SeenRequest]) -> Any:
    @web.middleware
    async def capture(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read()  # cached by aiohttp: the handler reads it again
        response = await handler(request)
        seen.append(
            SeenRequest(request.method, request.path, dict(request.headers), body, response.status)
        )
        return response

    return capture


@pytest.fixture
def app_stack(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppStackFactory:
    """``async with app_stack(api_key=..., hf_token=..., extra_env=...) as stack``."""
    seen: list[SeenRequest] = []
    real_create_app = receiver_module.create_app

    def create_app_capturing(*args: Any, **kwargs: Any) -> web.Application:
        app = real_create_app(*args, **kwargs)
        app.middlewares.insert(0, _capture_into(seen))  # outermost: sees the final status
        return app

    monkeypatch.setattr(receiver_module, "create_app", create_app_capturing)

    @asynccontextmanager
    async def start(
        *, api_key: str = API_KEY, hf_token: str | None = None, **launcher_kwargs: Any
    ) -> AsyncIterator[AppStack]:
        ingestor = Ingestor(store)
        server = ReceiverServer(ingestor, store, api_key=api_key)
        await server.start()
        output: list[str] = []
        launcher = LocalLauncher(
            store,
            ingestor,
            receiver=ReceiverAddress(server.url, api_key),
            base_dir=tmp_path,
            poll_s=0.05,
            hf_token=hf_token,
            on_output=lambda _job, line: output.append(line),
            **launcher_kwargs,
        )
        stack = AppStack(store, ingestor, server, launcher, seen, output)
        try:
            yield stack
        finally:
            await launcher.close()
            await server.stop()

    return start


@pytest.fixture
def tiny_run(tmp_path: Path) -> Callable[..., RunConfig]:
    """``tiny_run(max_steps=..., save_steps=..., logging_steps=..., output_dir=..., **sections)``:
    the built-in tiny Llama (full fine-tuning) on the demo chat set, no evaluation."""

    def build(
        *,
        name: str = "reliability",
        max_steps: int = 12,
        save_steps: int = 4,
        logging_steps: int = 1,
        output_dir: Path | None = None,
        **sections: dict[str, Any],
    ) -> RunConfig:
        data: dict[str, Any] = {
            "name": name,
            "method": "sft",
            "model": {"name_or_path": "builtin:tiny-llama"},
            "dataset": {"path": str(DEMO_CHAT), "eval_fraction": 0.0},
            "adapter": {"kind": "full"},
            "training": {
                "max_steps": max_steps,
                "per_device_train_batch_size": 2,
                "max_length": 64,
                "learning_rate": 1e-3,
            },
            "evaluation": {"strategy": "no"},
            "checkpoint": {
                "save_strategy": "steps",
                "save_steps": save_steps,
                "save_total_limit": 3,
            },
            "logging": {"logging_steps": logging_steps},
            "output": {"output_dir": str(output_dir or tmp_path / "out" / name)},
            "runtime": {"device": "cpu"},
        }
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        return parse_config(data)

    return build
