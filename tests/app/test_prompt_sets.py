"""Prompt sets for the Try tab: typed lists and files read as the trainer reads datasets (the
last answer is the reference), plain text refused by name, and the JSONL/CSV a user exports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.core.prompt_sets import (
    PromptRow,
    read_prompt_file,
    typed_prompts,
    write_csv,
    write_jsonl,
)
from trainer.data.formats import DatasetError


def test_typed_and_text_file_prompts_are_one_a_line(tmp_path: Path) -> None:
    rows = typed_prompts("What is 2+2?\n\n  Name a colour.  \n")
    assert [r.prompt for r in rows] == [
        [{"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "Name a colour."}],
    ]
    path = tmp_path / "prompts.txt"
    path.write_text("one\ntwo\n", encoding="utf-8")
    assert [r.shown for r in read_prompt_file(path)] == ["one", "two"]


def test_a_chat_file_gives_prompts_and_their_reference_answers(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ]
        },
        {"instruction": "Say hi", "output": "Hi!"},
    ]
    path.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    (got,) = read_prompt_file(path)
    assert got.prompt == rows[0]["messages"][:2] and got.reference == "Paris."
    assert got.shown == "Capital of France?"
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(json.dumps(rows[1]) + "\n", encoding="utf-8")
    assert [(r.shown, r.reference) for r in read_prompt_file(alpaca)] == [("Say hi", "Hi!")]


def test_plain_text_rows_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "just prose"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"corpus\.jsonl: plain 'text' rows hold no prompt"):
        read_prompt_file(path)


def test_exports_hold_each_models_answer(tmp_path: Path) -> None:
    rows = [
        PromptRow([{"role": "user", "content": "Hi"}], "Hello", {"tuned": "Hello", "base": "x"}),
        PromptRow("Go on", None, {"tuned": "on"}),
    ]
    write_jsonl(tmp_path / "out.jsonl", rows, ["tuned", "base"])
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines[0] == {
        "prompt": [{"role": "user", "content": "Hi"}],
        "reference": "Hello",
        "answers": {"tuned": "Hello", "base": "x"},
    }
    assert lines[1]["answers"] == {"tuned": "on", "base": None}
    write_csv(tmp_path / "out.csv", rows, ["tuned", "base"])
    with (tmp_path / "out.csv").open(newline="") as f:
        assert list(csv.reader(f)) == [
            ["prompt", "reference", "tuned", "base"],
            ["Hi", "Hello", "Hello", "x"],
            ["Go on", "", "on", ""],
        ]
