"""``python -m trainer chat`` on its own, as a script would pipe it: a checkpoint of a really
trained run, the run's rows, a bad request answered with a ``failed`` event naming the field
(the model stays loaded), and the end of input answered in full before a clean exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.trainer.chat_runs import ChatRun, trained_chat_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def chat_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ChatRun:
    return trained_chat_run(tmp_path_factory.mktemp("chat"), tiny_model_dir)


def test_piped_requests_on_a_checkpoint(chat_run: ChatRun) -> None:
    turn = [{"role": "user", "content": "Say hello."}]
    requests = [
        {"op": "rows", "id": "rows", "split": "eval", "limit": 2},
        {"op": "generate", "id": "bad", "messages": turn, "temperature": 9},
        {"op": "generate", "id": "g1", "messages": turn, "temperature": 0, "max_new_tokens": 16},
        {
            "op": "generate",
            "id": "g2",
            "prompt": "Say",
            "temperature": 0.8,
            "seed": 5,
            "max_new_tokens": 8,
            "min_new_tokens": 8,
        },
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "chat",
            "--config",
            str(chat_run.config_path),
            "--checkpoint",
            "50",
            "--json",
        ],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # stdout: events only
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["loading", "ready"]
    assert "checkpoint 50" in events[0]["message"] and events[1]["adapter"] is True
    rows = next(e for e in events if e["event"] == "rows")
    assert len(rows["rows"]) == 2 and rows["total"] == 4 and rows["rows"][0]["reference"]
    failed = next(e for e in events if e["event"] == "failed")
    assert failed["id"] == "bad" and failed["message"].startswith("temperature: must be between")
    for request_id, tokens in (("g1", None), ("g2", 8)):
        end = next(e for e in events if e["event"] == "done" and e["id"] == request_id)
        pieces = [e["text"] for e in events if e["event"] == "token" and e["id"] == request_id]
        assert "".join(pieces) == end["text"] and end["reason"] in ("eos", "length")
        assert tokens is None or end["tokens"] == tokens
