"""Reward functions for GRPO: the built-in ones and a user's own 'file.py:function'.

TRL calls each as ``f(prompts=..., completions=..., **dataset_columns) -> list[float | None]``;
a completion is a string, or a list of chat messages when the prompts are conversational.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.config import RunConfig

RewardFunc = Callable[..., list[float | None]]

BUILTIN_REWARDS = ("format", "length", "no_repeat", "match_reference")

_SENTENCE_END = re.compile(r"[.!?)\]\"'`]\s*$")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def completion_text(completion: Any) -> str:
    """The text of one completion, plain or conversational."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def format_reward(completions: list[Any], **_: Any) -> list[float | None]:
    """1.0 for a finished answer: not empty, ends a sentence, and any <think> block closed
    before the answer; 0.0 otherwise."""
    scores: list[float | None] = []
    for c in completions:
        text = completion_text(c).strip()
        ok = bool(text) and bool(_SENTENCE_END.search(text))
        if _THINK_OPEN in text or _THINK_CLOSE in text:
            ok = ok and (
                text.count(_THINK_OPEN) == text.count(_THINK_CLOSE) == 1
                and text.index(_THINK_OPEN) < text.index(_THINK_CLOSE)
                and bool(text.split(_THINK_CLOSE, 1)[1].strip())
            )
        scores.append(1.0 if ok else 0.0)
    return scores


def make_length_reward(target: int) -> RewardFunc:
    """1.0 at ``target`` characters, falling linearly to 0.0 at none or twice the target."""

    def length_reward(completions: list[Any], **_: Any) -> list[float | None]:
        return [
            max(0.0, 1.0 - abs(len(completion_text(c).strip()) - target) / target)
            for c in completions
        ]

    return length_reward


def no_repeat_reward(completions: list[Any], **_: Any) -> list[float | None]:
    """Share of distinct word trigrams: 1.0 when nothing repeats, near 0 for a loop."""
    scores: list[float | None] = []
    for c in completions:
        words = completion_text(c).split()
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        scores.append(len(set(grams)) / len(grams) if grams else 1.0)
    return scores


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def match_reference_reward(
    completions: list[Any], reference: list[Any] | None = None, **_: Any
) -> list[float | None]:
    """1.0 when the row's ``reference`` column appears in the completion (case and punctuation
    ignored), 0.0 when not; None (no opinion) for rows without a reference."""
    if reference is None:
        return [None] * len(completions)
    scores: list[float | None] = []
    for c, ref in zip(completions, reference, strict=True):
        if ref is None or not str(ref).strip():
            scores.append(None)
        else:
            scores.append(1.0 if _normalise(str(ref)) in _normalise(completion_text(c)) else 0.0)
    return scores


class RewardLoadError(ValueError):
    """A reward name that names nothing usable; the message is a "field: what to do" line."""


def _resolve_file(path: str, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None and not p.exists():
        p = base_dir / p
    return p


def load_user_reward(spec: str, base_dir: Path | None = None) -> RewardFunc:
    """Import ``function`` from ``path/to/file.py`` as written in 'path/to/file.py:function'."""
    field = "grpo.reward_functions"
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise RewardLoadError(
            f"{field}: {spec!r} is neither a built-in ({', '.join(BUILTIN_REWARDS)}) nor "
            "'path/to/file.py:function'"
        )
    file = _resolve_file(path, base_dir)
    if not file.is_file():
        raise RewardLoadError(f"{field}: file {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"tunedeck_reward_{file.stem}", file)
    if module_spec is None or module_spec.loader is None:
        raise RewardLoadError(f"{field}: cannot import {path!r} as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the user's code: any failure is theirs to fix, so say where
        raise RewardLoadError(
            f"{field}: importing {path!r} failed: {type(err).__name__}: {err}"
        ) from err
    func = getattr(module, name, None)
    if not callable(func):
        raise RewardLoadError(f"{field}: {path!r} has no function {name!r}")
    params = inspect.signature(func).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in params) and "completions" not in {
        p.name for p in params
    }:
        raise RewardLoadError(
            f"{field}: {name}() must accept completions=... and **kwargs "
            "(TRL passes prompts, completions and the dataset's columns by name)"
        )
    return func  # type: ignore[no-any-return]


def reward_function(name: str, cfg: RunConfig, base_dir: Path | None = None) -> RewardFunc:
    if name == "format":
        return format_reward
    if name == "length":
        return make_length_reward(cfg.grpo.target_length)
    if name == "no_repeat":
        return no_repeat_reward
    if name == "match_reference":
        return match_reference_reward
    return load_user_reward(name, base_dir)


def reward_functions(cfg: RunConfig, base_dir: Path | None = None) -> list[RewardFunc]:
    """Every reward in ``grpo.reward_functions``, loaded; RewardLoadError on the first bad one."""
    return [reward_function(n, cfg, base_dir) for n in cfg.grpo.reward_functions]


def reward_problems(cfg: RunConfig, base_dir: Path | None = None) -> list[str]:
    """Every unusable reward name, one line each (for `validate`)."""
    problems = []
    for name in cfg.grpo.reward_functions:
        try:
            reward_function(name, cfg, base_dir)
        except RewardLoadError as err:
            problems.append(str(err))
    return problems
