"""The Try tab on a really trained tiny run, with real chat processes (pytest-qt, offscreen):
the training set's first prompt answered side by side by the tuned and the base model (greedy
answers differ), tokens shown while the generation is still running, Stop within a second, the
held-out rows through both models exported as JSONL and CSV, and closing the tab ends the
processes."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.core.chat_session import ChatCatalog
from app.core.store import Store
from app.ui.job_view import JobView
from tests.process_state import running
from tests.trainer.chat_runs import ChatRun, store_job, trained_chat_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
LOAD_MS = 240_000  # two processes importing torch on a busy two-core machine


@pytest.fixture
def chat_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ChatRun:
    return trained_chat_run(tmp_path_factory.mktemp("chat"), tiny_model_dir)


def test_try_tab_chats_side_by_side_stops_runs_prompt_sets_and_releases(
    qtbot: QtBot, chat_run: ChatRun, tmp_path: Path
) -> None:
    from trainer.config import parse_config
    from trainer.data import load_run_data

    data = load_run_data(parse_config(chat_run.config), chat_run.folder)
    first_prompt = data.train[0]["prompt"][-1]["content"]
    references = {row["completion"][-1]["content"] for row in data.train}

    store = Store(tmp_path / "store.sqlite3")
    job = store_job(store, chat_run)
    catalog = ChatCatalog(store, tmp_path)
    view = JobView()
    qtbot.addWidget(view)
    view.resize(1200, 760)
    view.try_tab.attach(catalog.targets, others_of=catalog.other_targets)
    view.show()
    view.show_job(job)
    view.tabs.setCurrentWidget(view.try_host)  # shown: the models start loading
    tab = view.try_tab
    a, b = tab.panes["A"], tab.panes["B"]
    assert tab.target("A") is not None and tab.target("A").short_label == "tuned"
    assert tab.target("B") is not None and tab.target("B").short_label == "base"
    assert len(tab.sessions.sessions) == 2

    # greedy: the tuned model answers from its data, the random base does not
    tab.temperature.setValue(0)
    tab.max_new.setValue(24)
    tab.input.setPlainText(first_prompt)
    tab.send_button.click()
    assert tab.generating and not tab.send_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.generating, timeout=LOAD_MS)
    assert a.last_reason in ("eos", "length") and b.last_reason in ("eos", "length")
    assert a.answer != b.answer
    assert a.answer in references and b.answer not in references
    assert f"You: {first_prompt}" in a.view.toPlainText() and a.answer in a.view.toPlainText()
    assert [m["role"] for m in a.history] == ["user", "assistant"]  # multi-turn history kept

    # tokens appear while the generation runs: Stop then ends it ("stopped", not its end)
    tab.temperature.setValue(1.0)
    tab.ignore_eos.setChecked(True)
    tab.max_new.setValue(5000)
    tab.input.setPlainText("Tell me more.")
    before = {p.slot: p.updates for p in (a, b)}
    seen: list[str] = []
    b.view.textChanged.connect(lambda: seen.append(b.view.toPlainText()))
    tab.send_button.click()
    qtbot.waitUntil(lambda: all(p.updates - before[p.slot] >= 3 for p in (a, b)), timeout=60_000)
    partial = b.view.toPlainText()
    assert tab.generating and tab.stop_button.isEnabled()
    asked = time.monotonic()
    tab.stop_button.click()
    qtbot.waitUntil(lambda: not tab.generating, timeout=5_000)
    assert time.monotonic() - asked < 1.0
    assert a.last_reason == "stopped" and b.last_reason == "stopped"
    assert b.view.toPlainText().startswith(partial)
    assert len({text for text in seen if "Tell me more." in text}) >= 3  # shown piece by piece
    assert all(s.running for s in tab.sessions.sessions.values())  # still loaded

    # a prompt set: the held-out rows with their references, through both models
    tab.ignore_eos.setChecked(False)
    tab.temperature.setValue(0)
    tab.max_new.setValue(24)
    tab.modes.setCurrentIndex(1)
    tab.held_out_button.click()
    qtbot.waitUntil(lambda: len(tab.set_rows) == 4, timeout=30_000)
    assert {tab.table.item(r, 1).text() for r in range(4)} <= references
    tab.run_set_button.click()
    labels = list(tab.labels().values())
    qtbot.waitUntil(lambda: not tab.generating, timeout=60_000)
    assert all(set(row.answers) == set(labels) for row in tab.set_rows)
    assert tab.table.columnCount() == 4 and tab.table.item(0, 2).text()
    tab.export(tmp_path / "set.jsonl", "jsonl")
    tab.export(tmp_path / "set.csv", "csv")
    lines = [json.loads(line) for line in (tmp_path / "set.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and set(lines[0]["answers"]) == set(labels)
    assert lines[0]["reference"] in references
    with (tmp_path / "set.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["prompt", "reference", *labels] and len(rows) == 5

    # closing the tab ends both processes
    pids = [
        s.process.proc.pid for s in tab.sessions.sessions.values() if s.process and s.process.proc
    ]
    assert len(pids) == 2
    tab.close()
    qtbot.waitUntil(lambda: not any(running(pid) for pid in pids), timeout=10_000)
    assert tab.sessions.sessions == {}
    store.close()


def test_a_running_job_offers_nothing_to_try(
    qtbot: QtBot, chat_run: ChatRun, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store.sqlite3")
    job = store_job(store, chat_run, status="running")
    view = JobView()
    qtbot.addWidget(view)
    catalog = ChatCatalog(store, tmp_path)
    view.try_tab.attach(catalog.targets)
    view.show_job(job)
    assert "is running" in view.try_tab.message.text()
    assert not view.try_tab.body.isEnabled() and view.try_tab.sessions.sessions == {}
    store.close()
