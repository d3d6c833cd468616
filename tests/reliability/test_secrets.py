"""Secrets: where known fake secret values end up after a full local run (issue 8).

The app's credentials hold a recognisable RunPod key, Hugging Face token and receiver API key;
the launcher's job token is made recognisable too. After a real run through the receiver, the
store, the launcher and the notifications, every place a secret could leak to is searched:

- the store: every table, every column (and the SQLite files' raw bytes);
- every file under the test's folders: the job's config.json and trainer.log, the output folder
  (events.jsonl, checkpoints, training_args.bin), CSV/JSON exports, an exported config;
- the app's log (every logger, DEBUG), this process's stdout/stderr;
- the notifications raised for the run's alerts, and ``format_alert`` on text holding secrets;
- every request the trainer sent (captured by a middleware on the real receiver);
- the trainer's own environment (/proc/PID/environ).

Allowed: the HF token in the trainer's environment only (a Hub call needs it there); the job
token and the receiver key in the trainer's environment and in the credential headers of its
requests (that is what they are for). The RunPod key: nowhere.

The same search runs after a run on a simulated RunPod pod (the fake RunPod server and its
proxy, the real client, launcher, agent and trainer): there the RunPod key may be only in the
credentials of requests to RunPod's API, and the HF token and job token only in what starts the
pod's run (its environment).

HOOK(runpod): ``RUNS`` maps a target to a coroutine that runs a job and returns the places it
touched; a new way to run (another cloud) is one more entry, the search and its rules stay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app import cli
from app.core import launcher_local, paths
from app.core.credentials import CredentialStore, read_secret
from app.core.launcher import create_job_for
from app.core.metrics_csv import JobRows, write_metrics_csv
from app.core.notifications import AlertNotifications, RecordingNotifier, format_alert
from tests.reliability.conftest import AppStackFactory
from tests.ui.app_harness import until
from trainer.config import RunConfig, parse_config

RUNPOD_KEY = "rpa_FAKE_RUNPOD_KEY_123"
HF_TOKEN = "hf_FAKE_TOKEN_456"
RECEIVER_KEY = "FAKE_RECEIVER_KEY_789_abcdefghijklmnop"
JOB_TOKEN = "FAKE_JOB_TOKEN_000_abcdefghijklmnopqrstuvwxyz"
SECRETS = {
    "runpod key": RUNPOD_KEY,
    "hf token": HF_TOKEN,
    "receiver key": RECEIVER_KEY,
    "job token": JOB_TOKEN,
}
# where each secret may legitimately be; every other place must not hold it
ALLOWED: dict[str, set[str]] = {
    "runpod key": {"runpod api credentials"},  # what RunPod's own API is called with
    "hf token": {"trainer environment", "pod environment"},
    "receiver key": {"trainer environment", "request credentials"},
    "job token": {"trainer environment", "request credentials", "pod environment"},
}
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}


@dataclass
class Places:
    """Every place searched: a kind (what ALLOWED names) and a label, with its bytes."""

    found: list[tuple[str, str, bytes]] = field(default_factory=list)

    def add(self, kind: str, label: str, content: str | bytes) -> None:
        data = content.encode("utf-8", "replace") if isinstance(content, str) else content
        self.found.append((kind, label, data))

    def kinds(self) -> set[str]:
        return {kind for kind, _, _ in self.found}


@dataclass
class RunContext:
    app_stack: AppStackFactory
    tiny_run: Callable[..., RunConfig]
    tmp_path: Path
    credentials: CredentialStore
    monkeypatch: pytest.MonkeyPatch


def _store_cells(db: Path, places: Places) -> None:
    with sqlite3.connect(db) as raw:
        tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = raw.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        text = value if isinstance(value, bytes) else str(value)
                        places.add("store", f"{table}.{column}", text)
    assert "jobs" in tables and "alerts" in tables


def _request_places(stack: Any, places: Places) -> None:
    for i, seen in enumerate(stack.requests):
        label = f"request {i} {seen.method} {seen.path}"
        places.add("request body", label, seen.body)
        for name, value in seen.headers.items():
            kind = "request credentials" if name.lower() in CREDENTIAL_HEADERS else "request header"
            places.add(kind, f"{label} {name}", f"{name}: {value}")
        places.add("request path", label, seen.path)


async def local_run(ctx: RunContext) -> Places:
    """A full local run as the desktop does it; the places it touched."""
    places = Places()
    cfg = ctx.tiny_run(name="secrets", max_steps=6, save_steps=3, logging_steps=1)
    api_key = ctx.credentials.receiver_api_key()
    notifier = RecordingNotifier()
    async with ctx.app_stack(
        api_key=api_key,
        hf_token_source=lambda: read_secret(ctx.credentials, "hf_token"),
    ) as stack:
        notifications = AlertNotifications(notifier, secrets=ctx.credentials.known_values)
        stack.ingestor.subscribe_callbacks(
            on_alert=lambda _job, alert: asyncio.ensure_future(notifications.handle(alert))
        )
        job = create_job_for(stack.store, cfg)
        await stack.launcher.start(job, cfg)
        pid = stack.store.require_job(job.id).pid
        # until the fork has become the trainer (before exec it shows this process's environment)
        proc = Path(f"/proc/{pid}")
        await until(lambda: b"trainer" in (proc / "cmdline").read_bytes(), 30, "the exec")
        environ = (proc / "environ").read_bytes()
        places.add("trainer environment", f"pid {pid}", environ)
        assert await asyncio.wait_for(stack.launcher.wait(job.id), 240) == 0
        await asyncio.sleep(0.2)  # the last notifications
        job = stack.store.require_job(job.id)
        assert job.status == "completed", job.error
        # the trainer really had what it needs (and the test searches something real)
        env = dict(line.split(b"=", 1) for line in environ.split(b"\0") if b"=" in line)
        assert env[b"HF_TOKEN"] == HF_TOKEN.encode()
        assert env[b"JOB_TOKEN"] == JOB_TOKEN.encode()
        assert env[b"INTERNAL_API_KEY"] == RECEIVER_KEY.encode()
        assert stack.store.metrics(job.id), "the run reported no metrics"
        assert any(r.headers.get("X-API-Key") == RECEIVER_KEY for r in stack.requests)

        # exports: the CLI's CSV and JSON, the one CSV writer, the config as exported
        exports = ctx.tmp_path / "exports"
        exports.mkdir()
        for flag, name in (("--csv", "metrics.csv"), ("--json", "metrics.json")):
            assert cli.main(["export", job.id, flag, "-o", str(exports / name)]) == 0
        with (exports / "charts.csv").open("w", encoding="utf-8") as out:
            write_metrics_csv([JobRows(job.id, job.name, stack.store.metrics(job.id))], out)
        # what Run > Export writes (RunDialog.export_file) and what a pod would be sent
        (exports / "config.json").write_text(parse_config(job.config()).to_json())
        places.add(
            "notification", "recorded", "\n".join(f"{n.title}\n{n.body}" for n in notifier.sent)
        )
        assert notifier.sent, "the run raised no notification"
        _request_places(stack, places)
    return places


async def runpod_run(ctx: RunContext) -> Places:
    """A run on a simulated pod: the fake RunPod (its API and proxy on 127.0.0.1), the real
    client, launcher, agent and trainer. Places: every request the app made (to RunPod's API and
    through the proxy to the pod's agent), the pods' create bodies, the pod's files."""
    from app.core.ingest import Ingestor
    from app.core.runpod import launcher as runpod_launcher
    from app.core.runpod.client import RunPodClient
    from app.core.runpod.endpoints import runpod_endpoints
    from app.core.runpod.launcher import RunPodLauncher
    from app.core.store import Store
    from tests.runpod.cloud_helpers import FAST, cloud_config, point_app_at
    from tests.runpod.fake_runpod import fake_runpod_server

    places = Places()
    ctx.monkeypatch.setattr(runpod_launcher, "new_job_token", lambda: JOB_TOKEN)
    cfg = cloud_config(max_steps=4)
    with fake_runpod_server(ctx.tmp_path / "fake-runpod", account_key=RUNPOD_KEY) as fake:
        point_app_at(fake, ctx.monkeypatch)
        with Store() as store:
            endpoints = runpod_endpoints()
            key = ctx.credentials.get("runpod_api_key") or ""
            async with RunPodClient(key, base_url=endpoints.api_url) as client:
                launcher = RunPodLauncher(
                    store,
                    Ingestor(store),
                    client,
                    endpoints=endpoints,
                    base_dir=ctx.tmp_path,
                    timeouts=FAST,
                    hf_token_source=lambda: read_secret(ctx.credentials, "hf_token"),
                )
                try:
                    job = create_job_for(store, cfg, target="runpod")
                    await launcher.start(job, cfg)
                    await asyncio.wait_for(launcher.wait(job.id), 240)
                finally:
                    await launcher.close()
            done = store.require_job(job.id)
            assert done.status == "completed", done.error
            assert store.metric_count(job.id) > 0
        for i, request in enumerate(fake.requests):
            label = f"runpod request {i} {request.method} {request.path}"
            to_api = not request.path.startswith("/proxy/")
            starts_training = request.path.endswith("/start")  # carries the pod's run env
            body_kind = "pod environment" if starts_training else "request body"
            places.add(body_kind, label, request.body)
            for name, value in request.headers.items():
                credential = name.lower() in CREDENTIAL_HEADERS
                kind = (
                    ("runpod api credentials" if to_api else "request credentials")
                    if credential
                    else "request header"
                )
                places.add(kind, f"{label} {name}", f"{name}: {value}")
        for pod_id, pod in fake.pods.items():
            places.add("pod environment", f"pod {pod_id} create body", json.dumps(pod.body))
    # the search is real: the key did authorise the API calls, the job token did reach the pod
    assert any(
        RUNPOD_KEY.encode() in d for k, _, d in places.found if k == "runpod api credentials"
    )
    assert any(JOB_TOKEN.encode() in d for k, _, d in places.found if k == "pod environment")
    return places


# HOOK(runpod): each target's run; the search and its rules below are shared
RUNS: dict[str, Callable[[RunContext], Awaitable[Places]]] = {
    "local": local_run,
    "runpod": runpod_run,
}


def _files_under(root: Path, places: Places) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            places.add("file", str(path.relative_to(root)), path.read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(RUNS))
def test_fake_secrets_appear_only_where_they_are_needed(
    target: str,
    app_stack: AppStackFactory,
    tiny_run: Callable[..., RunConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    credentials = CredentialStore()
    credentials.set_session("runpod_api_key", RUNPOD_KEY)
    credentials.set_session("hf_token", HF_TOKEN)
    credentials.set_session("receiver_api_key", RECEIVER_KEY)
    monkeypatch.setattr(launcher_local, "new_job_token", lambda: JOB_TOKEN)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    ctx = RunContext(app_stack, tiny_run, tmp_path, credentials, monkeypatch)
    assert credentials.get("runpod_api_key") == RUNPOD_KEY  # the app holds it all along

    with caplog.at_level(logging.DEBUG):
        places = asyncio.run(RUNS[target](ctx))
    _store_cells(paths.store_path(), places)
    _files_under(tmp_path, places)
    captured = capsys.readouterr()
    places.add("log", "app log (all loggers, DEBUG)", caplog.text)
    places.add("log", "stdout", captured.out)
    places.add("log", "stderr", captured.err)
    assert {"store", "file", "log", "request body"} <= places.kinds()
    if target == "local":
        assert "notification" in places.kinds()
        assert any(label.endswith("trainer.log") for _, label, _ in places.found)
        assert any(label.endswith("events.jsonl") for _, label, _ in places.found)

    leaks = [
        f"{name} in {kind}: {label}"
        for kind, label, data in places.found
        for name, value in SECRETS.items()
        if value.encode() in data and kind not in ALLOWED[name]
    ]
    assert not leaks, "secrets where they must not be:\n" + "\n".join(leaks)
    print(
        f"FIGURE secrets ({target} run): {len(places.found)} places searched "
        f"({len([p for p in places.found if p[0] == 'store'])} store cells, "
        f"{len([p for p in places.found if p[0] == 'file'])} files, "
        f"{len([p for p in places.found if p[0].startswith('request')])} request parts), 0 leaks"
    )


def test_notification_text_never_shows_a_secret() -> None:
    """An alert whose text carries the app's secrets (a trainer printing its environment into an
    error, say) is shown with each one redacted."""
    credentials = CredentialStore()
    stored = {"runpod_api_key": RUNPOD_KEY, "hf_token": HF_TOKEN, "receiver_api_key": RECEIVER_KEY}
    for name, value in stored.items():
        credentials.set_session(name, value)
    leaky = " ".join(stored.values())
    for alert_type in ("job_failed", "gpu_oom", "loss_nan", "job_completed", "stalled"):
        note = format_alert(
            {
                "type": alert_type,
                "job_id": "job-1",
                "model_name": leaky,
                "message": f"env: {leaky}",
                "error_message": f"HF_TOKEN={HF_TOKEN} RUNPOD_API_KEY={RUNPOD_KEY}",
            },
            secrets=credentials.known_values(),
        )
        shown = f"{note.title}\n{note.body}"
        assert not [v for v in stored.values() if v in shown], (alert_type, shown)
