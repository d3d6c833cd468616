"""Chat with a trained model from the app: the models a job offers, and one long-lived
``python -m trainer chat`` process per model (DESIGN.md §8, issue 12).

The desktop never imports the training stack: each model runs in the trainer's environment as
a ``TrainerProcess`` (app.core.trainer_subprocess) that loads it once and answers JSON-line
requests (trainer/chat/protocol.py) with streamed events. ``ChatSessions`` keeps at most one
process per model (a job's final model, one of its checkpoints, or its base model), so the Try
tab, side by side and prompt sets share a loaded model; a process is released when its user
closes it or after it has been idle for ``idle_release_s``.

Plain callbacks, no Qt: ``on_event(session, event)`` is called on the process's reader thread
(a Qt caller posts it to the GUI thread, app.ui.bridge).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.jobs import Job
from app.core.trainer_python import launch_python
from app.core.trainer_subprocess import Event, TrainerProcess, TrainerProcessError
from trainer.checkpoints import checkpoint_folders, checkpoint_step

# jobs whose models can be tried: the run ended and left its model or checkpoints
TRY_STATUSES = ("completed", "cancelled")
IDLE_RELEASE_S = 600.0
CLOSE_GRACE_S = 2.0
Message = dict[str, str]


class ChatUnavailable(Exception):
    """A job has no model to chat with (not finished, folder gone, config unreadable)."""


@dataclass(frozen=True)
class ChatTarget:
    """One model to chat with: a job's final model, one of its checkpoints, or its base."""

    job_id: str
    job_name: str
    config: dict[str, Any]
    run_dir: Path
    work_dir: Path
    checkpoint: int | None = None
    base: bool = False

    @property
    def key(self) -> str:
        which = (
            "base"
            if self.base
            else (f"checkpoint-{self.checkpoint}" if self.checkpoint is not None else "final")
        )
        return f"{self.job_id}:{which}"

    @property
    def label(self) -> str:
        if self.base:
            return f"Base model ({self.config.get('model', {}).get('name_or_path', '?')})"
        if self.checkpoint is not None:
            return f"{self.job_name} · checkpoint {self.checkpoint}"
        return f"{self.job_name} · tuned"

    @property
    def short_label(self) -> str:
        if self.base:
            return "base"
        return f"checkpoint {self.checkpoint}" if self.checkpoint is not None else "tuned"

    def verb_args(self, config_path: Path) -> list[str]:
        args = ["chat", "--config", str(config_path), "--run-dir", str(self.run_dir), "--json"]
        if self.base:
            args.append("--base")
        elif self.checkpoint is not None:
            args += ["--checkpoint", str(self.checkpoint)]
        return args


def _has_model(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()


def job_targets(job: Job, fallback_dir: Path) -> list[ChatTarget]:
    """The models ``job`` offers, in menu order: the final model (when the run saved one), its
    checkpoints (newest first), the base model. ChatUnavailable when there is nothing to load."""
    if job.status not in TRY_STATUSES:
        raise ChatUnavailable(
            f"job {job.id} is {job.status}: its model can be tried once it has completed or "
            "been cancelled"
        )
    # on first use: the Try tab is built before the window's first paint, these are not
    from app.core.launcher import work_dir_of
    from trainer.config import ConfigError, parse_config

    try:
        cfg = parse_config(job.config())
    except ConfigError as err:
        raise ChatUnavailable(f"job {job.id}: its stored config does not load ({err})") from err
    work_dir = work_dir_of(job, cfg, fallback_dir)
    run_dir = Path(job.output_dir) if job.output_dir else cfg.resolved_output_dir(work_dir)
    if not run_dir.is_dir():
        raise ChatUnavailable(
            f"job {job.id}: its output folder {run_dir} does not exist (moved or deleted?)"
        )

    def target(checkpoint: int | None = None, base: bool = False) -> ChatTarget:
        return ChatTarget(job.id, job.name, job.config(), run_dir, work_dir, checkpoint, base)

    targets = [target()] if _has_model(run_dir) else []
    for folder in checkpoint_folders(run_dir):
        step = checkpoint_step(folder)
        if step is not None and _has_model(folder):
            targets.append(target(checkpoint=step))
    if not targets:
        raise ChatUnavailable(f"job {job.id}: {run_dir} holds no saved model or checkpoint to load")
    return [*targets, target(base=True)]


@dataclass(frozen=True)
class GenerationSettings:
    system: str = ""
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int | None = None  # None: a different draw each time

    def request_fields(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        }


SessionCallback = Callable[["ChatSession", Event], None]
_ids = itertools.count(1)


@dataclass
class ChatSession:
    """One chat process for one model. ``start()`` returns at once; the model loads in the
    background and requests sent meanwhile wait for it."""

    target: ChatTarget
    python: str | None = None
    on_event: SessionCallback = lambda session, event: None
    extra_env: dict[str, str] = field(default_factory=dict)
    ready: dict[str, Any] | None = None
    error: str | None = None
    last_used: float = field(default_factory=time.monotonic)
    pending: set[str] = field(default_factory=set)
    process: TrainerProcess | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ChatSession:
        """Start the process; LaunchError (no training environment) or TrainerProcessError."""
        from app.core.launcher import LaunchError  # the launchers' import chain, on first use

        self._tmp = tempfile.TemporaryDirectory(prefix="tunedeck-chat-")
        config = Path(self._tmp.name) / "config.json"
        config.write_text(json.dumps(self.target.config), encoding="utf-8")
        try:
            self.process = TrainerProcess(
                self.target.verb_args(config),
                python=self.python,
                cwd=self.target.work_dir,
                extra_env=self.extra_env,
                stdin=True,
                on_event=self._event,
            )
            self.process.start()
        except (LaunchError, TrainerProcessError):
            self._cleanup()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def idle_for(self, now: float | None = None) -> float:
        return 0.0 if self.busy else (now or time.monotonic()) - self.last_used

    def _send(self, request: dict[str, Any]) -> str:
        if self.process is None:
            raise TrainerProcessError("the chat process has not been started")
        request_id = str(request.get("id") or f"r{next(_ids)}")
        with self._lock:
            self.pending.add(request_id)
            self.last_used = time.monotonic()
        try:
            self.process.send({**request, "id": request_id})
        except TrainerProcessError:
            with self._lock:
                self.pending.discard(request_id)
            raise
        return request_id

    def generate(
        self, prompt: Sequence[Message] | str, settings: GenerationSettings, **extra: Any
    ) -> str:
        """Ask for an answer to ``prompt`` (chat turns, or plain text); returns the request id
        the events carry."""
        body: dict[str, Any] = {"op": "generate", **settings.request_fields(), **extra}
        if isinstance(prompt, str):
            body["prompt"] = prompt
        else:
            body["messages"] = [dict(m) for m in prompt]
        return self._send(body)

    def request_rows(self, split: str = "eval", limit: int = 100) -> str:
        return self._send({"op": "rows", "split": split, "limit": limit})

    def stop(self) -> None:
        """End the generation in progress (and any already asked for) after its next token."""
        if self.process is not None and self.process.running:
            with contextlib.suppress(TrainerProcessError):  # it has just ended: nothing to stop
                self.process.send({"op": "stop"})

    def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """End the process (the model is released) and remove its files."""
        process = self.process
        if process is not None and process.running:
            try:
                process.send({"op": "quit"})
                process.wait(grace_s)
            except TrainerProcessError:
                process.cancel(grace_s)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _event(self, event: Event) -> None:
        kind = event.get("event")
        with self._lock:
            if kind == "ready":
                self.ready = event
            elif kind == "error":
                self.error = str(event.get("message") or "the chat process failed")
                hint = event.get("hint")
                if hint:
                    self.error += f"\nHint: {hint}"
            elif kind in ("done", "failed", "rows"):
                self.pending.discard(str(event.get("id", "")))
                self.last_used = time.monotonic()
            elif kind == "exit":
                self.pending.clear()
        self.on_event(self, event)


class ChatSessions:
    """At most one chat process per model, shared by everything that talks to that model."""

    def __init__(
        self,
        *,
        python: Callable[[], str | None] = launch_python,
        on_event: SessionCallback = lambda session, event: None,
        idle_release_s: float = IDLE_RELEASE_S,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.python = python
        self.on_event = on_event
        self.idle_release_s = idle_release_s
        self.extra_env = dict(extra_env or {})
        self.sessions: dict[str, ChatSession] = {}

    def get(self, target: ChatTarget) -> ChatSession:
        """The running session of ``target``, started now if there is none (or it ended) with
        ``python()`` (default: launch_python); LaunchError or TrainerProcessError when it cannot."""
        session = self.sessions.get(target.key)
        if session is not None and session.running:
            return session
        if session is not None:
            session.close()
        session = ChatSession(
            target, python=self.python(), on_event=self.on_event, extra_env=self.extra_env
        ).start()
        self.sessions[target.key] = session
        return session

    def find(self, key: str) -> ChatSession | None:
        return self.sessions.get(key)

    def release(self, key: str) -> None:
        session = self.sessions.pop(key, None)
        if session is not None:
            session.close()

    def release_all(self) -> None:
        for key in list(self.sessions):
            self.release(key)

    def release_idle(self, now: float | None = None) -> list[str]:
        """Close every session idle for longer than ``idle_release_s``; their keys."""
        now = now or time.monotonic()
        idle = [k for k, s in self.sessions.items() if s.idle_for(now) > self.idle_release_s]
        for key in idle:
            self.release(key)
        return idle


class ChatCatalog:
    """The models the Try tab offers, read from the store: a job's own, and other finished
    jobs' (their final model, else their newest checkpoint) to compare with."""

    def __init__(
        self, store: Any, fallback_dir: Path, *, others_limit: int = 30, scan_limit: int = 200
    ) -> None:
        self.store = store
        self.fallback_dir = fallback_dir
        self.others_limit = others_limit
        self.scan_limit = scan_limit  # newest jobs looked at (this runs on the GUI thread)

    def targets(self, job_id: str) -> list[ChatTarget]:
        job = self.store.get_job(job_id)
        if job is None:
            raise ChatUnavailable(f"job {job_id} is no longer in the store")
        return job_targets(job, self.fallback_dir)

    def other_targets(self, job_id: str) -> list[ChatTarget]:
        found: list[ChatTarget] = []
        for job in self.store.list_jobs()[: self.scan_limit]:
            if len(found) >= self.others_limit:
                break
            if job.id == job_id or job.status not in TRY_STATUSES:
                continue
            try:
                found.append(job_targets(job, self.fallback_dir)[0])
            except ChatUnavailable:
                continue
        return found
