"""``tunedeck chat JOB --compare base`` as a user runs it, against a really trained tiny run: the
answers stream into the terminal piece by piece, the tuned and base models answer differently,
and the end of input ends the session cleanly (exit 0, no process left)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.core.store import Store
from tests.conftest import REPO_ROOT
from tests.trainer.chat_runs import ChatRun, store_job, trained_chat_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def chat_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ChatRun:
    return trained_chat_run(tmp_path_factory.mktemp("chat"), tiny_model_dir)


def test_chat_streams_both_answers_and_exits_on_end_of_input(
    chat_run: ChatRun, tmp_path: Path
) -> None:
    from trainer.config import parse_config
    from trainer.data import load_run_data

    data = load_run_data(parse_config(chat_run.config), chat_run.folder)
    prompt = data.train[0]["prompt"][-1]["content"]
    references = {row["completion"][-1]["content"] for row in data.train}
    with Store() as store:  # the app's store (TUNEDECK_DATA_DIR is tmp_path's)
        job = store_job(store, chat_run)

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "chat",
            job.id[:8],
            "--compare",
            "base",
            "--temperature",
            "0",
            "--max-new-tokens",
            "300",
            "--ignore-eos",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=dict(os.environ),
    )
    assert proc.stdin is not None and proc.stdout is not None
    chunks: list[tuple[float, bytes]] = []

    def read() -> None:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            chunks.append((time.monotonic(), chunk))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.stdin.write((prompt + "\n").encode())
    proc.stdin.close()  # end of input after one turn: answer it, then end
    try:
        code = proc.wait(600)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    out = b"".join(c for _, c in chunks).decode()
    assert code == 0, proc.stderr.read().decode() if proc.stderr else out
    lines = out.splitlines()
    assert any(line.startswith("ready: ") and "adapter" in line for line in lines)
    tuned = next(line for line in lines if line.startswith("tuned> "))[len("tuned> ") :]
    base = next(line for line in lines if line.startswith("base> "))[len("base> ") :]
    assert any(tuned.startswith(ref) for ref in references)  # greedy: its data's answer first
    assert not any(base.startswith(ref) for ref in references) and tuned != base
    # streamed: the answers came in many pieces, not in one write at the end
    answer_chunks = [c for _, c in chunks if b"ready:" not in c and b"loading" not in c]
    assert len(answer_chunks) >= 5
