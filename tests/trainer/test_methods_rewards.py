"""The GRPO reward functions: what each built-in scores, and loading a user's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import parse_config
from trainer.methods.rewards import (
    RewardLoadError,
    format_reward,
    load_user_reward,
    make_length_reward,
    match_reference_reward,
    no_repeat_reward,
    reward_functions,
    reward_problems,
)


def test_format_rewards_finished_answers() -> None:
    assert format_reward(["Paris is the capital.", "Paris is the", "", "   "]) == [1, 0, 0, 0]


def test_format_checks_a_think_block_is_closed_before_the_answer() -> None:
    good = "<think>it is Paris</think> Paris."
    unclosed = "<think>it is Paris. Paris."
    no_answer = "<think>it is Paris</think>"
    assert format_reward([good, unclosed, no_answer]) == [1, 0, 0]


def test_format_reads_chat_completions() -> None:
    assert format_reward([[{"role": "assistant", "content": "Yes."}]]) == [1.0]


def test_length_peaks_at_the_target() -> None:
    reward = make_length_reward(10)
    on, half, none, double = reward(["x" * 10, "x" * 5, "", "x" * 20])
    assert on == 1.0 and half == pytest.approx(0.5) and none == 0.0 and double == 0.0


def test_no_repeat_punishes_loops() -> None:
    varied, loop = no_repeat_reward(["one two three four five", "a b c a b c a b c a b c"])
    assert varied == 1.0
    assert loop is not None and loop < 0.5


def test_match_reference_ignores_case_and_punctuation() -> None:
    scores = match_reference_reward(
        ["It is PARIS!", "London.", "anything"], reference=["paris", "Paris", None]
    )
    assert scores == [1.0, 0.0, None]
    assert match_reference_reward(["x"]) == [None]


def test_user_function_loads_from_a_relative_file(tmp_path: Path) -> None:
    (tmp_path / "r.py").write_text(
        "def score(completions, **kw):\n    return [1.0 for _ in completions]\n"
    )
    assert load_user_reward("r.py:score", base_dir=tmp_path)(["a", "b"]) == [1.0, 1.0]
    cfg = parse_config({"method": "grpo", "grpo": {"reward_functions": ["length", "r.py:score"]}})
    assert len(reward_functions(cfg, tmp_path)) == 2


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, "sparkle", "neither a built-in"),
        (None, "missing.py:f", "does not exist"),
        ("x = 1\n", "r.py:f", "has no function 'f'"),
        ("raise RuntimeError('boom')\n", "r.py:f", "importing 'r.py' failed: RuntimeError: boom"),
        ("def f(prompt):\n    return []\n", "r.py:f", "must accept completions"),
    ],
)
def test_bad_reward_names_say_what_is_wrong(
    tmp_path: Path, source: str | None, spec: str, message: str
) -> None:
    if source is not None:
        (tmp_path / "r.py").write_text(source)
    with pytest.raises(RewardLoadError, match=r"grpo\.reward_functions") as err:
        load_user_reward(spec, base_dir=tmp_path)
    assert message in str(err.value)
    cfg = parse_config({"method": "grpo", "grpo": {"reward_functions": ["format", spec]}})
    assert reward_problems(cfg, tmp_path) == [str(err.value)]
