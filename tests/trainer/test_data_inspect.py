"""The dataset report the desktop's picker and `python -m trainer validate` show: it never
raises for bad data, it says what is wrong and where, and it is quick on a big file."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.config import METHODS
from trainer.data import detect_format, inspect_dataset, prepare_rows, read_rows
from trainer.data.formats import FORMATS, MESSAGE_ROLES, SHAREGPT_ROLES


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def chat_line(i: int) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": f"Answer {i}."},
            ]
        }
    )


def test_a_good_file_reports_format_rows_columns_and_preview(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", "\n".join(chat_line(i) for i in range(12)))
    report = inspect_dataset(str(f), "sft", preview=3)
    assert report.ok and report.checked and report.problems == []
    assert (report.fmt, report.num_rows, report.columns) == ("messages", 12, ["messages"])
    assert len(report.preview) == 3
    assert report.preview[0]["messages"][0]["content"] == "Question 0?"
    assert report.num_examples == 12
    assert "12 rows" in report.text() and "ok for sft" in report.text()


def test_kto_from_pairs_reports_the_examples_it_makes(repo_root: Path) -> None:
    report = inspect_dataset(str(repo_root / "resources/datasets/demo-preference.jsonl"), "kto")
    assert report.ok and report.num_examples == 2 * report.num_rows
    assert "training examples" in report.text()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("empty.jsonl", "", "the file is empty"),
        ("bad.jsonl", '{"text": "a"}\n{"text": \n', "line 2, column 10: not valid JSON"),
        ("d.txt", "hello", 'unknown file type ".txt"'),
        ("short.csv", "prompt,completion\nq\n", "line 2: 1 values but the header has 2"),
        ("mixed.jsonl", '{"text": "a"}\n{"prompt": "q", "completion": "a"}\n',
         'line 1 is "text", line 2 is "prompt_completion"'),
        ("label.jsonl", '{"prompt": "q", "completion": "a", "label": "maybe"}\n',
         "line 1, field \"label\": must be true or false (got 'maybe')"),
        ("emptyrow.jsonl", '{"text": "a"}\n{}\n', "line 2: empty row"),
    ],
)  # fmt: skip
def test_problems_are_reported_not_raised(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    report = inspect_dataset(str(write(tmp_path / name, text)), "sft")
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems
    assert report.hint
    assert "problem: " in report.text() and "hint: " in report.text()


def test_a_missing_file_is_a_report(tmp_path: Path) -> None:
    report = inspect_dataset("nope.jsonl", base_dir=tmp_path)
    assert not report.ok and report.problems == ["file not found"]


def test_method_mismatch_is_a_problem_with_a_hint(repo_root: Path) -> None:
    report = inspect_dataset(str(repo_root / "resources/datasets/demo-chat.jsonl"), "dpo")
    assert report.fmt == "messages" and not report.ok
    assert report.problems == [
        'dpo needs preference rows with "chosen" and "rejected"; this file is "messages"'
    ]
    assert "sft" in report.hint


def test_a_missing_assistant_turn_is_found_with_a_method(tmp_path: Path) -> None:
    f = write(
        tmp_path / "d.jsonl", chat_line(0) + '\n{"messages": [{"role": "user", "content": "Q"}]}'
    )
    assert inspect_dataset(str(f)).ok  # as data it is fine (grpo could take it) ...
    report = inspect_dataset(str(f), "sft")  # ... but sft has nothing to learn on line 2
    assert report.problems == ['line 2, field "messages": no assistant turn to learn from']


def test_declared_format_mismatch_is_reported(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", chat_line(0))
    report = inspect_dataset(str(f), "sft", fmt="text")
    assert not report.ok and report.fmt == "text"
    assert report.problems == ['line 1, field "text": missing (the row looks like "messages")']


def test_rlhf_with_a_reward_model_takes_prompts(repo_root: Path) -> None:
    prompts = str(repo_root / "resources/datasets/demo-prompts.jsonl")
    assert not inspect_dataset(prompts, "rlhf").ok
    assert inspect_dataset(prompts, "rlhf", has_reward_model=True).ok


def test_a_hub_id_is_not_loaded_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    report = inspect_dataset("someone/some-dataset", "sft")
    assert report.ok and not report.checked and report.num_rows == 0
    assert "when the run starts" in report.hint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = inspect_dataset("tunedeck-nobody/no-such-dataset", "sft", load_hub=True)
    assert not loaded.ok and loaded.checked
    assert loaded.problems[0].startswith("could not reach Hugging Face dataset")


def test_a_hundred_thousand_rows_take_seconds_not_minutes(tmp_path: Path) -> None:
    f = write(tmp_path / "big.jsonl", "\n".join(chat_line(i) for i in range(100_000)))
    started = time.perf_counter()
    report = inspect_dataset(str(f), "sft")
    took = time.perf_counter() - started
    assert report.ok and report.num_rows == 100_000
    # about 2 s here on a busy 2-core machine; the bound leaves room for a slower CI runner
    assert took < 15, f"inspect took {took:.1f} s"


# Rows built from the field names the formats use, holding any JSON value: whatever the mix,
# the report says what is wrong instead of raising.
_KEYS = [
    "messages",
    "conversations",
    "instruction",
    "input",
    "output",
    "text",
    "prompt",
    "completion",
    "chosen",
    "rejected",
    "label",
    "role",
    "content",
    "from",
    "value",
]
_ROLES = sorted(set(MESSAGE_ROLES + SHAREGPT_ROLES))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.sampled_from(_ROLES),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
_U, _A = {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
_VALID = [
    {"messages": [_U, _A]},
    {"messages": [{"role": "system", "content": "s"}, _U]},
    {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    {"instruction": "i", "input": "x", "output": "o"},
    {"text": "t"},
    {"prompt": "p", "completion": "c"},
    {"prompt": [_U], "reference": "r"},
    {"prompt": "p", "chosen": "a", "rejected": "b"},
    {"chosen": [_U, _A], "rejected": [_U, {"role": "assistant", "content": "b"}]},
    {"chosen": "same start a", "rejected": "same start b"},
    {"prompt": "p", "completion": [_A], "label": "false"},
]
_random_row = st.dictionaries(st.sampled_from(_KEYS), _json, max_size=4)
_valid_row = st.sampled_from(_VALID)
_mutated_row = st.builds(lambda row, k, v: {**row, k: v}, _valid_row, st.sampled_from(_KEYS), _json)
_rows = st.lists(_random_row | _valid_row | _mutated_row, min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=_rows,
    method=st.sampled_from([None, *METHODS]),
    fmt=st.sampled_from(["auto", *FORMATS]),
)
def test_inspect_never_raises_on_any_rows(
    rows: list[dict[str, Any]], method: str | None, fmt: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "d.jsonl")
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        report = inspect_dataset(path, method, fmt)
        assert report.ok == (not report.problems)
        if report.ok and method is not None:
            # what the report passes, a run can load: the same checks, then the TRL shapes
            read = read_rows(path)
            assert detect_format(read, declared=fmt) == report.fmt
            assert len(prepare_rows(read, report.fmt, method)) == report.num_examples
