"""app.core.chat_session against the real chat verb on a really trained tiny run: the models a
job offers, one process per model, greedy answers of the tuned and the base model, Stop within
a second, held-out rows, release (also when idle), and a model that does not fit."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.chat_session import (
    ChatCatalog,
    ChatSession,
    ChatSessions,
    ChatUnavailable,
    GenerationSettings,
    job_targets,
)
from app.core.store import Store
from tests.process_state import running
from tests.trainer.chat_runs import ChatRun, store_job, trained_chat_run

GREEDY = GenerationSettings(temperature=0, max_new_tokens=24)
pytestmark = pytest.mark.slow  # a real training run and chat processes that load torch


@pytest.fixture
def chat_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ChatRun:
    return trained_chat_run(tmp_path_factory.mktemp("chat"), tiny_model_dir)


class Collector:
    """Events of every session, in a queue the test reads with a bounded wait."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()

    def __call__(self, session: ChatSession, event: dict[str, Any]) -> None:
        self.events.put((session.target.key, event))

    def until(
        self,
        key: str,
        kind: str,
        request_id: str | None = None,
        timeout_s: float = 120,
        allow_error: bool = False,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The first ``kind`` event of session ``key`` (and request), and those before it."""
        before: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                got_key, event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if got_key != key:
                continue
            if event["event"] == kind and (request_id is None or event.get("id") == request_id):
                return event, before
            assert allow_error or event["event"] not in ("error", "exit"), event
            before.append(event)
        raise AssertionError(f"no {kind} event from {key} within {timeout_s} s")


def test_a_job_offers_its_model_checkpoints_and_base(chat_run: ChatRun, tmp_path: Path) -> None:
    with Store(tmp_path / "store.sqlite3") as store:
        job = store_job(store, chat_run)
        running = store_job(store, chat_run, status="running")
    labels = [t.short_label for t in job_targets(job, tmp_path)]
    assert labels == ["tuned", "checkpoint 100", "checkpoint 50", "base"]
    assert job_targets(job, tmp_path)[0].label == "chat-demo · tuned"
    with pytest.raises(ChatUnavailable, match="is running"):
        job_targets(running, tmp_path)

    with Store(tmp_path / "store.sqlite3") as store:
        other = store_job(store, chat_run)
        catalog = ChatCatalog(store, tmp_path)
        assert catalog.targets(job.id)[0].key == f"{job.id}:final"
        # to compare with: other finished jobs' final models (never a running one)
        assert [t.key for t in catalog.other_targets(job.id)] == [f"{other.id}:final"]


def test_sessions_stream_compare_stop_and_release(chat_run: ChatRun, tmp_path: Path) -> None:
    with Store(tmp_path / "store.sqlite3") as store:
        job = store_job(store, chat_run)
    tuned, *_, base = job_targets(job, tmp_path)
    events = Collector()
    sessions = ChatSessions(python=lambda: None, on_event=events)
    try:
        first = sessions.get(tuned)
        assert sessions.get(tuned) is first  # one process per model
        other = sessions.get(base)
        assert first.process is not None and other.process is not None
        rows_id = first.request_rows("train", 100)
        rows, _ = events.until(tuned.key, "rows", rows_id)
        prompt = rows["rows"][0]["prompt"]
        references = {r["reference"] for r in rows["rows"]}
        assert rows["total"] == 12 and len(references) == 4

        answers = {}
        for target, session in ((tuned, first), (base, other)):
            request = session.generate(prompt, GREEDY)
            done, before = events.until(target.key, "done", request)
            tokens = [e["text"] for e in before if e["event"] == "token" and e["id"] == request]
            assert "".join(tokens) == done["text"]
            answers[target.short_label] = done["text"]
        assert answers["tuned"] != answers["base"]
        assert answers["tuned"] in references  # it learned the data's answers; the base did not
        assert answers["base"] not in references

        long = first.generate(
            prompt, GenerationSettings(temperature=1.0, max_new_tokens=5000), min_new_tokens=5000
        )
        events.until(tuned.key, "token", long)
        asked = time.monotonic()
        first.stop()
        done, _ = events.until(tuned.key, "done", long, timeout_s=10)
        assert done["reason"] == "stopped" and time.monotonic() - asked < 1.0
        assert first.running and not first.busy  # the model stays loaded after a stop

        sessions.idle_release_s = 0.0
        pid = first.process.proc.pid if first.process.proc else -1
        time.sleep(0.01)
        assert sorted(sessions.release_idle()) == sorted([tuned.key, base.key])
        assert not running(pid) and not first.running and sessions.sessions == {}
    finally:
        sessions.release_all()


def test_a_model_that_does_not_fit_ends_the_session_with_the_numbers(
    chat_run: ChatRun, tmp_path: Path
) -> None:
    from tests.trainer.test_chat import _huge_model

    config = json.loads(json.dumps(chat_run.config))
    config["model"]["name_or_path"] = str(_huge_model(tmp_path / "huge"))
    with Store(tmp_path / "store.sqlite3") as store:
        job = store_job(store, chat_run)
        job = store.update_job(job.id, config_json=json.dumps(config))
    base = job_targets(job, tmp_path)[-1]
    events = Collector()
    session = ChatSession(base, on_event=events).start()
    error, _ = events.until(base.key, "error", allow_error=True)
    assert "does not fit" in error["message"] and "GB" in error["message"]
    assert session.process is not None and session.process.wait(30) == 2
    assert session.error is not None and "Hint:" in session.error
