"""Format detection over every row, row checks that name line and field, and method fit."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.config import METHODS
from trainer.data.formats import (
    ACCEPTED_FORMATS,
    FORMATS,
    DatasetError,
    check_method,
    classify,
    detect_format,
    line_ranges,
    scan_rows,
)
from trainer.data.readers import Row


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


EXAMPLES: dict[str, dict[str, Any]] = {
    "messages": {"messages": [{"role": "system", "content": "Be brief."}, user("Hi"), bot("Yo")]},
    "sharegpt": {
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]
    },
    "alpaca": {"instruction": "Translate", "input": "cat", "output": "chat"},
    "text": {"text": "The sun is a star."},
    "prompt_completion": {"prompt": "The sky is", "completion": " blue."},
    "prompt": {"prompt": [user("2+2?")], "reference": "4"},
    "preference": {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    "kto": {"prompt": "2+2?", "completion": "4", "label": True},
}


def rows_of(*data: dict[str, Any]) -> list[Row]:
    return [Row(i, d) for i, d in enumerate(data, start=1)]


def problems(data: list[dict[str, Any]], declared: str = "auto") -> list[str]:
    with pytest.raises(DatasetError) as info:
        detect_format(rows_of(*data), "d.jsonl", declared=declared)
    assert info.value.source == "d.jsonl"
    return info.value.problems


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_detected(fmt: str) -> None:
    assert detect_format(rows_of(EXAMPLES[fmt], EXAMPLES[fmt])) == fmt


@pytest.mark.parametrize(
    ("row", "fmt"),
    [
        ({"instruction": "Say hi", "output": "hi"}, "alpaca"),  # no input at all
        ({"instruction": "Say hi", "input": None, "output": "hi"}, "alpaca"),
        ({"instruction": "a", "input": "", "output": "b", "text": "x"}, "alpaca"),
        ({"chosen": [user("q"), bot("a")], "rejected": [user("q"), bot("b")]}, "preference"),
        ({"prompt": [user("q")], "completion": [bot("a")]}, "prompt_completion"),
        ({"prompt": "q", "completion": "a", "label": "False"}, "kto"),  # CSV spelling
        ({"text": "x", "label": 1}, "text"),  # a classifier's rows are plain text here
        (
            {"messages": [user("q"), {"role": "assistant", "content": None, "tool_calls": [{}]}]},
            "messages",
        ),
    ],
)
def test_variants_that_are_fine(row: dict[str, Any], fmt: str) -> None:
    assert detect_format(rows_of(row)) == fmt


def test_format_is_judged_from_every_row_not_the_first() -> None:
    data = [EXAMPLES["messages"]] * 40 + [EXAMPLES["alpaca"]] + [EXAMPLES["messages"]] * 15
    data += [EXAMPLES["alpaca"]]
    found = problems(data)
    assert found == [
        'rows of different formats: lines 1-40, 42-56 are "messages", lines 41, 57 are "alpaca"'
    ]


def test_a_mix_of_prompts_with_and_without_completions_suggests_the_prompt_format() -> None:
    with pytest.raises(DatasetError) as info:
        detect_format(rows_of(EXAMPLES["prompt"], EXAMPLES["prompt_completion"]))
    assert 'set dataset.format to "prompt"' in info.value.hint


def test_parquet_rows_are_called_rows() -> None:
    rows = [Row(1, EXAMPLES["text"], "row"), Row(2, EXAMPLES["alpaca"], "row")]
    with pytest.raises(DatasetError) as info:
        detect_format(rows)
    assert 'row 1 is "text", row 2 is "alpaca"' in info.value.problems[0]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, "line 2: empty row"),
        ({"question": "q", "answer": "a"}, 'line 2: no known format (fields "question", "answer")'),
        (
            {"messages": [user("q"), {"role": "bot", "content": "a"}]},
            'line 2, field "messages[1].role": must be one of system, user, assistant, tool '
            "(got 'bot')",
        ),
        (
            {"messages": [user("q"), {"role": "assistant", "content": 42}]},
            'line 2, field "messages[1].content": must be a string (got a number)',
        ),
        (
            {"messages": "hello"},
            'line 2, field "messages": must be a list of {"role", "content"} (got a string)',
        ),
        ({"messages": []}, 'line 2, field "messages": is an empty list'),
        (
            {"messages": [user("   "), bot("a")]},
            'line 2, field "messages[0].content": is empty',
        ),
        (
            {"conversations": [{"from": "person", "value": "q"}]},
            'line 2, field "conversations[0].from": must be one of human, gpt, system, tool, '
            "user, assistant (got 'person')",
        ),
        ({"instruction": "Say hi", "output": ""}, 'line 2, field "output": is empty'),
        ({"instruction": "Say hi"}, 'line 2, field "output": missing'),
        (
            {"instruction": "Say hi", "input": 3, "output": "x"},
            'line 2, field "input": must be a string (got a number)',
        ),
        ({"text": None}, 'line 2, field "text": must be a string (got null)'),
        ({"text": ""}, 'line 2, field "text": is empty'),
        (
            {"prompt": "q", "completion": ["a"]},
            'line 2, field "completion[0]": must be an object {"role", "content"} (got a string)',
        ),
        ({"prompt": "q", "chosen": "a"}, 'line 2, field "rejected": missing'),
        (
            {"prompt": "q", "chosen": "same", "rejected": "same"},
            'line 2, fields "chosen" and "rejected": are the same, so there is nothing to prefer',
        ),
        (
            {"prompt": "q", "completion": "a", "label": "yes"},
            "line 2, field \"label\": must be true or false (got 'yes')",
        ),
        (
            {"prompt": "q", "completion": "a", "label": 1},
            'line 2, field "label": must be true or false (got a number)',
        ),
    ],
)
def test_a_broken_row_names_its_line_and_field(row: dict[str, Any], expected: str) -> None:
    # line 1 is a good row of the same format, so the problem is the row, not a mix
    good = EXAMPLES[classify(row) or "text"]
    assert problems([good, row]) == [expected]


def test_problems_stop_at_ten_and_count_the_rest() -> None:
    found = problems([{"text": ""}] * 30)
    assert len(found) == 11
    assert found[9] == 'line 10, field "text": is empty'
    assert found[10] == "... and 20 more"


def test_a_long_broken_conversation_does_not_flood_the_report() -> None:
    turns = [{"role": "robot", "content": ""}] * 50
    assert len(problems([{"messages": turns}])) <= 11


def test_declared_format_is_checked_against_every_row() -> None:
    rows = [EXAMPLES["alpaca"], EXAMPLES["alpaca"], EXAMPLES["messages"]]
    assert problems(rows, declared="alpaca") == [
        'line 3, field "instruction": missing (the row looks like "messages")',
        'line 3, field "output": missing',
    ]


def test_declared_format_that_fits_no_row_says_what_the_rows_look_like() -> None:
    with pytest.raises(DatasetError) as info:
        detect_format(rows_of(EXAMPLES["messages"]), declared="preference")
    assert 'the rows look like "messages"' in info.value.hint


def test_declared_format_reads_a_subset_of_fields() -> None:
    # alpaca rows that also carry "text": declared "text" trains on the text alone
    row = {"instruction": "a", "output": "b", "text": "a b"}
    assert detect_format(rows_of(row), declared="text") == "text"
    # prompt rows with some completions: declared "prompt" uses the prompts
    assert (
        detect_format(rows_of(EXAMPLES["prompt"], EXAMPLES["prompt_completion"]), declared="prompt")
        == "prompt"
    )


def test_scan_does_not_raise() -> None:
    scan = scan_rows(rows_of({}, EXAMPLES["text"]))
    assert scan.fmt == "text" and scan.problems.lines() == ["line 1: empty row"]


def test_line_ranges() -> None:
    assert line_ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert line_ranges(list(range(1, 40, 2)), limit=3) == "1, 3, 5, ... (17 more ranges)"


# -------------------------------------------------------------------------------- methods


def test_accepted_formats_as_documented() -> None:
    assert set(ACCEPTED_FORMATS) == set(METHODS)
    assert ACCEPTED_FORMATS["sft"] == (
        "messages",
        "sharegpt",
        "alpaca",
        "text",
        "prompt_completion",
    )
    assert ACCEPTED_FORMATS["cpt"] == ("text",)
    assert ACCEPTED_FORMATS["dpo"] == ACCEPTED_FORMATS["orpo"] == ("preference",)
    assert ACCEPTED_FORMATS["kto"] == ("kto", "preference")
    assert ACCEPTED_FORMATS["grpo"] == (
        "prompt",
        "prompt_completion",
        "messages",
        "sharegpt",
        "alpaca",
    )
    assert ACCEPTED_FORMATS["rlhf"] == ("preference",)


def test_method_mismatch_names_method_need_and_format() -> None:
    with pytest.raises(DatasetError) as info:
        check_method("messages", "dpo", source="chat.jsonl")
    err = info.value
    assert err.problems == [
        'dpo needs preference rows with "chosen" and "rejected"; this file is "messages"'
    ]
    assert err.hint.startswith('"messages" rows suit sft, grpo')
    assert str(err).startswith("chat.jsonl: dpo needs")


def test_cpt_on_chat_rows() -> None:
    with pytest.raises(DatasetError, match='cpt needs rows with "text"; this file is "alpaca"'):
        check_method("alpaca", "cpt")


def test_rlhf_takes_any_prompts_once_the_reward_comes_from_elsewhere() -> None:
    with pytest.raises(DatasetError, match="rlhf needs preference rows"):
        check_method("prompt", "rlhf")
    check_method("prompt", "rlhf", has_reward_model=True)
    with pytest.raises(DatasetError):
        check_method("text", "rlhf", has_reward_model=True)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_accepts_its_formats(method: str) -> None:
    for fmt in FORMATS:
        if fmt in ACCEPTED_FORMATS[method]:
            check_method(fmt, method)
        else:
            with pytest.raises(DatasetError) as info:
                check_method(fmt, method)
            (problem,) = info.value.problems
            assert problem.startswith(f"{method} needs ")
            assert problem.endswith(f'; this file is "{fmt}"')


def test_a_mix_is_named_first_even_among_many_unknown_rows() -> None:
    data = [EXAMPLES["text"], EXAMPLES["alpaca"]] + [{"q": "?"}] * 20
    found = problems(data)
    assert found[0] == 'rows of different formats: line 1 is "text", line 2 is "alpaca"'
    assert found[1] == 'line 3: no known format (fields "q")'
    assert found[-1] == "... and 11 more"


def test_declared_format_reports_each_bad_row_once() -> None:
    found = problems([EXAMPLES["text"], {}, {"q": "?"}], declared="text")
    assert found == ["line 2: empty row", 'line 3, field "text": missing']
