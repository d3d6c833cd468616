"""The JSON-lines client for trainer verbs, against real processes: the real trainer's doctor
verb, and small scripts that stand in for verbs that stream, crash, hang or answer requests.
Every wait is bounded."""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from app.core.trainer_subprocess import TrainerProcess, TrainerProcessError
from tests.conftest import REPO_ROOT
from tests.process_state import running

STREAMING = textwrap.dedent(
    """
    import json, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(json.dumps({"event": "child", "pid": child.pid}), flush=True)
    print("a line that is not JSON", flush=True)
    for i in range(10_000):
        print(json.dumps({"event": "progress", "done": i, "total": 10_000}), flush=True)
        time.sleep(0.02)
    """
)
CRASHING = textwrap.dedent(
    """
    import json
    print(json.dumps({"event": "progress", "done": 0, "total": 1}), flush=True)
    raise RuntimeError("the tokenizer file is corrupt")
    """
)
ECHO = textwrap.dedent(
    """
    import json, sys
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("stop"):
            break
        for word in request["text"].split():
            print(json.dumps({"event": "token", "text": word}), flush=True)
        print(json.dumps({"event": "done"}), flush=True)
    """
)
SILENT = "import time; time.sleep(60)"


def _script(code: str, **kwargs: Any) -> TrainerProcess:
    return TrainerProcess([], trainer_args=("-c", code), **kwargs)


def test_real_doctor_verb_streams_an_error_event_for_a_missing_dataset(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(
        '{"version": 1, "name": "x", "method": "sft", "model": {"name_or_path": '
        '"builtin:tiny-llama"}, "dataset": {"path": "' + str(tmp_path / "nope.jsonl") + '"}}',
        encoding="utf-8",
    )
    proc = TrainerProcess(["doctor", "--config", str(config), "--json"], cwd=REPO_ROOT).start()
    events = list(proc.events(idle_timeout_s=60))
    assert [e["event"] for e in events] == ["error", "exit"]
    assert "nope.jsonl" in events[0]["message"] and events[-1]["code"] == 2


def test_events_stream_in_order_and_cancel_stops_the_whole_group() -> None:
    proc = _script(STREAMING).start()
    stream = proc.events(idle_timeout_s=30)
    first = next(stream)
    assert first["event"] == "child"
    assert next(stream) == {"event": "log", "line": "a line that is not JSON"}
    done = [next(stream)["done"] for _ in range(3)]
    assert done == [0, 1, 2]
    proc.cancel(grace_s=5)
    rest = list(stream)
    assert rest[-2:] == [{"event": "cancelled"}, {"event": "exit", "code": rest[-1]["code"]}]
    assert rest[-1]["code"] != 0
    assert proc.wait(5) == rest[-1]["code"]
    assert not running(first["pid"])  # the verb's own child went with it


def test_a_crashing_verb_ends_with_a_readable_error() -> None:
    proc = _script(CRASHING).start()
    events = list(proc.events(idle_timeout_s=30))
    assert [e["event"] for e in events] == ["progress", "error", "exit"]
    error = events[1]
    assert "RuntimeError: the tokenizer file is corrupt" in error["message"]
    assert "exit code 1" in error["message"] and error["hint"]
    assert events[-1]["code"] == 1


def test_requests_on_stdin_for_a_long_lived_verb() -> None:
    proc = _script(ECHO, stdin=True).start()
    stream = proc.events(idle_timeout_s=30)
    for text in ("hello there", "again"):
        proc.send({"text": text})
        got = []
        for event in stream:
            if event["event"] == "done":
                break
            got.append(event["text"])
        assert got == text.split()
    proc.send({"stop": True})
    assert [e["event"] for e in stream] == ["exit"]
    with pytest.raises(TrainerProcessError):
        proc.send({"text": "too late"})


def test_callbacks_on_the_reader_thread_and_a_bounded_wait() -> None:
    seen: list[dict[str, Any]] = []
    ended = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event)
        if event["event"] == "exit":
            ended.set()

    _script(CRASHING, on_event=on_event).start()
    assert ended.wait(30)
    assert [e["event"] for e in seen] == ["progress", "error", "exit"]


def test_a_silent_verb_times_out_and_is_stopped() -> None:
    proc = _script(SILENT).start()
    with pytest.raises(TrainerProcessError, match=r"sent nothing for 0\.5 s"):
        list(proc.events(idle_timeout_s=0.5))
    assert proc.wait(10) != 0


def test_a_python_that_does_not_exist_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(TrainerProcessError, match="cannot start the trainer"):
        TrainerProcess(["doctor"], python=str(tmp_path / "no-python")).start()


def test_the_environment_is_the_clean_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/frozen/app")
    monkeypatch.setenv("RUNPOD_API_KEY", "secret")
    proc = _script(
        "import json, os; print(json.dumps({'event': 'env', 'ld': os.environ.get("
        "'LD_LIBRARY_PATH'), 'key': os.environ.get('RUNPOD_API_KEY')}))"
    ).start()
    events = list(proc.events(idle_timeout_s=30))
    assert events[0] == {"event": "env", "ld": None, "key": None}
    assert sys.executable == proc.command[0]
