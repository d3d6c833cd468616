"""Turn checked rows into what TRL 1.16 reads, split train/eval, and load a run's data.

Shapes (docs/ARCHITECTURE.md): sft chat data becomes conversational prompt/completion (every turn
before the last assistant turn, then that turn) so prompts are masked with any chat template;
dpo/orpo get prompt/chosen/rejected with the prompt made explicit; kto gets prompt/completion/label
(a preference pair becomes one desirable and one undesirable row); grpo and the rlhf policy get a
prompt plus extras (``reference``: the answer the data holds, for rewards); the rlhf reward model
gets chosen/rejected with the prompt folded in.

A whole dataset is either plain text or conversational: TRL decides from the first row, and a
column cannot mix strings and lists, so one list anywhere makes every row conversational (a string
prompt becomes a user turn, a string answer an assistant turn). Light module.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from trainer.config import RunConfig
from trainer.data.formats import (
    DatasetError,
    ProblemList,
    check_method,
    detect_format,
    label_value,
    method_problem,
)
from trainer.data.readers import Row, read_rows

T = TypeVar("T")
Message = dict[str, str]
PURPOSES = ("train", "policy", "reward")
SHAREGPT_ROLE_MAP = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
}
# the fields that may hold either text or a list of chat turns
_TURN_FIELDS = ("prompt", "completion", "chosen", "rejected")


class _RowProblem(Exception):
    """One row that cannot become a training example; collected, then raised together."""


# ------------------------------------------------------------------------------ conversions


def clean_turns(turns: list[dict[str, Any]]) -> list[Message]:
    """Chat turns reduced to role and content (Arrow needs one shape for every turn)."""
    return [{"role": str(t["role"]), "content": t.get("content") or ""} for t in turns]


def sharegpt_to_messages(conversations: list[dict[str, Any]]) -> list[Message]:
    return [
        {"role": SHAREGPT_ROLE_MAP[t["from"]], "content": t.get("value") or ""}
        for t in conversations
    ]


def alpaca_to_messages(data: dict[str, Any]) -> list[Message]:
    """A user turn (instruction, a blank line, the input when there is one) and the answer."""
    prompt = data["instruction"].strip()
    extra = data.get("input")
    if isinstance(extra, str) and extra.strip():
        prompt = f"{prompt}\n\n{extra.strip()}"
    turns: list[Message] = []
    system = data.get("system")
    if isinstance(system, str) and system.strip():
        turns.append({"role": "system", "content": system})
    turns.append({"role": "user", "content": prompt})
    turns.append({"role": "assistant", "content": data["output"]})
    return turns


def row_messages(data: dict[str, Any], fmt: str) -> list[Message]:
    """The conversation a chat-like row holds (messages, sharegpt or alpaca)."""
    if fmt == "messages":
        return clean_turns(data["messages"])
    if fmt == "sharegpt":
        return sharegpt_to_messages(data["conversations"])
    return alpaca_to_messages(data)


def split_last_assistant(turns: list[Message]) -> tuple[list[Message], Message | None]:
    """Every turn before the last assistant turn, and that turn (None when there is none)."""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i]["role"] == "assistant":
            return turns[:i], turns[i]
    return turns, None


def as_turns(value: Any, role: str) -> list[Message]:
    """Text as a one-turn conversation in ``role``; a conversation cleaned."""
    if isinstance(value, list):
        return clean_turns(value)
    return [{"role": role, "content": str(value)}]


def text_of(value: Any) -> str:
    """The text of an answer: itself, or the content of a conversation's assistant turns."""
    if isinstance(value, list):
        said = [t.get("content") or "" for t in value if t.get("role") == "assistant"]
        return "\n".join(said or [t.get("content") or "" for t in value])
    return str(value)


def _common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _extract_text_prompt(chosen: str, rejected: str) -> tuple[str, str, str]:
    """The shared beginning of two answers as the prompt, cut at a word boundary (TRL's
    implicit-prompt convention: the space before the answer goes with the answer)."""
    n = _common_prefix(chosen, rejected)
    while n > 0 and not chosen[n - 1].isspace():
        n -= 1
    if n > 0:
        n -= 1  # leave the separating space at the start of the answers
    return chosen[:n], chosen[n:], rejected[n:]


# ------------------------------------------------------------------------------- per method


@dataclass
class _Context:
    fmt: str
    method: str
    purpose: str
    conversational: bool


def _pair(data: dict[str, Any], ctx: _Context) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected) of a preference row, the prompt made explicit."""
    prompt, chosen, rejected = data.get("prompt"), data["chosen"], data["rejected"]
    if prompt == "":
        prompt = None
    if ctx.conversational:
        c, r = as_turns(chosen, "assistant"), as_turns(rejected, "assistant")
        if isinstance(prompt, list):
            return clean_turns(prompt), c, r
        # an implicit prompt: the turns both conversations begin with, short of the answers
        shared = min(_common_prefix(c, r), len(c) - 1, len(r) - 1)
        if shared:
            return c[:shared], c[shared:], r[shared:]
        if prompt is not None:
            return as_turns(prompt, "user"), c, r
        raise _RowProblem(
            'fields "chosen"/"rejected": no "prompt" and no shared opening turns to take it '
            'from; add a "prompt" field'
        )
    if prompt is not None:
        return prompt, chosen, rejected
    p, c_text, r_text = _extract_text_prompt(chosen, rejected)
    if not p.strip():
        raise _RowProblem(
            'fields "chosen"/"rejected": no "prompt" and the two answers share no opening '
            'text to take it from; add a "prompt" field'
        )
    return p, c_text, r_text


def _prompt_and_reference(data: dict[str, Any], ctx: _Context) -> tuple[Any, str | None]:
    """The prompt a policy is asked, and the answer the data holds for it (if any)."""
    fmt = ctx.fmt
    if fmt in ("messages", "sharegpt", "alpaca"):
        prompt, answer = split_last_assistant(row_messages(data, fmt))
        if not prompt:
            raise _RowProblem(
                f'field "{_turns_key(fmt)}": no turn before the assistant turn to use as the prompt'
            )
        return prompt, (answer["content"] if answer else None)
    if fmt == "preference":
        prompt, chosen, _ = _pair(data, ctx)
        return prompt, text_of(chosen)
    prompt = data["prompt"]
    if ctx.conversational:
        prompt = as_turns(prompt, "user")
    if fmt == "prompt_completion":
        return prompt, text_of(data["completion"])
    if fmt == "kto":
        return prompt, text_of(data["completion"]) if label_value(data["label"]) else None
    return prompt, None


def _turns_key(fmt: str) -> str:
    return {"messages": "messages", "sharegpt": "conversations"}.get(fmt, "instruction")


def _policy(data: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    prompt, reference = _prompt_and_reference(data, ctx)
    if ctx.fmt == "prompt":  # the user's own extras ride along for their reward functions
        extras = {k: v for k, v in data.items() if k != "prompt"}
        return [{"prompt": prompt, **extras}]
    return [{"prompt": prompt, "reference": reference}]


def _sft(data: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    fmt = ctx.fmt
    if fmt == "text":
        return [{"text": data["text"]}]
    if fmt == "prompt_completion":
        prompt, completion = data["prompt"], data["completion"]
        if ctx.conversational:
            prompt, completion = as_turns(prompt, "user"), as_turns(completion, "assistant")
        return [{"prompt": prompt, "completion": completion}]
    turns = row_messages(data, fmt)
    prompt, answer = split_last_assistant(turns)
    key = _turns_key(fmt)
    if answer is None:
        raise _RowProblem(f'field "{key}": no assistant turn to learn from')
    if not prompt:
        raise _RowProblem(f'field "{key}": the assistant turn has no turn before it to answer')
    return [{"prompt": prompt, "completion": [answer]}]


def _kto(data: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    if ctx.fmt == "preference":
        prompt, chosen, rejected = _pair(data, ctx)
        return [
            {"prompt": prompt, "completion": chosen, "label": True},
            {"prompt": prompt, "completion": rejected, "label": False},
        ]
    prompt, completion = data["prompt"], data["completion"]
    if ctx.conversational:
        prompt, completion = as_turns(prompt, "user"), as_turns(completion, "assistant")
    return [{"prompt": prompt, "completion": completion, "label": bool(label_value(data["label"]))}]


def _preference(data: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    prompt, chosen, rejected = _pair(data, ctx)
    return [{"prompt": prompt, "chosen": chosen, "rejected": rejected}]


def _reward(data: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    # TRL's implicit-prompt form: the same rendering the policy's completions are scored in
    prompt, chosen, rejected = _pair(data, ctx)
    return [{"chosen": prompt + chosen, "rejected": prompt + rejected}]


Converter = Callable[[dict[str, Any], _Context], list[dict[str, Any]]]


def _converter(method: str, purpose: str) -> Converter:
    if method == "rlhf":
        return _reward if purpose == "reward" else _policy
    return {
        "sft": _sft,
        "cpt": _sft,
        "dpo": _preference,
        "orpo": _preference,
        "kto": _kto,
        "grpo": _policy,
    }[method]


def _is_conversational(rows: Sequence[Row], fmt: str) -> bool:
    if fmt in ("messages", "sharegpt", "alpaca"):
        return True
    if fmt == "text":
        return False
    return any(isinstance(r.data.get(k), list) for r in rows for k in _TURN_FIELDS)


def _as_rows(rows: Sequence[Row | dict[str, Any]]) -> list[Row]:
    """Rows as given, or plain dicts numbered "row 1", "row 2", ... for messages."""
    out: list[Row] = []
    for i, r in enumerate(rows, start=1):
        out.append(r if isinstance(r, Row) else Row(i, r, "row"))
    return out


def prepare_groups(
    rows: Sequence[Row | dict[str, Any]],
    fmt: str,
    method: str,
    purpose: str = "train",
    *,
    source: str | None = None,
) -> list[list[dict[str, Any]]]:
    """For each row, the training examples it becomes (two for a KTO pair), in row order.

    Splitting these groups keeps both halves of a pair on the same side of train/eval."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if purpose == "reward" and fmt != "preference":
        raise DatasetError(
            [
                f'rlhf needs preference rows with "chosen" and "rejected" to train its reward '
                f'model; this file is "{fmt}"'
            ],
            "set rlhf.reward_dataset to a preference file, or rlhf.reward_model to a trained "
            "reward model",
            source,
        )
    if purpose != "reward" and (problem := method_problem(fmt, method, has_reward_model=True)):
        raise DatasetError([problem], "", source)
    checked = _as_rows(rows)
    ctx = _Context(fmt, method, purpose, _is_conversational(checked, fmt))
    convert = _converter(method, purpose)
    groups: list[list[dict[str, Any]]] = []
    problems = ProblemList()
    for row in checked:
        try:
            groups.append(convert(row.data, ctx))
        except _RowProblem as err:
            problems.add(f"{row.where}, {err}")
    if problems:
        raise DatasetError(problems.lines(), _prepare_hint(fmt, method), source)
    return groups


def _prepare_hint(fmt: str, method: str) -> str:
    if fmt in ("messages", "sharegpt") and method == "sft":
        return "every conversation needs an assistant turn (the answer the model learns)"
    return f"fix or remove these rows for {method}"


def prepare_rows(
    rows: Sequence[Row | dict[str, Any]],
    fmt: str,
    method: str,
    purpose: str = "train",
    *,
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Checked rows of format ``fmt`` as the plain dicts ``method``'s TRL trainer reads.

    ``purpose`` matters for rlhf only: "policy" (or "train") gives prompts, "reward" gives the
    reward model's chosen/rejected pairs. DatasetError names the rows that cannot be used."""
    groups = prepare_groups(rows, fmt, method, purpose, source=source)
    return [example for group in groups for example in group]


# ------------------------------------------------------------------------------------ split


def split_rows(
    rows: Sequence[T],
    *,
    eval_fraction: float,
    seed: int,
    shuffle: bool = True,
    max_samples: int | None = None,
) -> tuple[list[T], list[T]]:
    """(train, eval): shuffled with ``random.Random(seed)``, cut to ``max_samples``, and the
    last ``eval_fraction`` held out — at least one row when the fraction is above zero and
    there are two rows or more, never every row."""
    items = list(rows)
    if shuffle:
        random.Random(seed).shuffle(items)
    if max_samples is not None:
        items = items[:max_samples]
    n = len(items)
    n_eval = 0
    if eval_fraction > 0 and n >= 2:
        n_eval = min(n - 1, max(1, round(n * eval_fraction)))
    return items[: n - n_eval], items[n - n_eval :]


# ------------------------------------------------------------------------------ a run's data


@dataclass
class RunData:
    """A run's prepared rows. ``eval`` is None when nothing is held out."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] | None
    fmt: str
    source: str
    eval_source: str | None = None


def dataset_source(cfg: RunConfig) -> str:
    """Where the training rows come from: DATASET_URL (set by a launcher that uploaded the
    file, DESIGN.md §3) over ``dataset.path``."""
    return os.environ.get("DATASET_URL", "").strip() or cfg.dataset.path


def _reward_from_elsewhere(cfg: RunConfig) -> bool:
    return cfg.method == "rlhf" and bool(cfg.rlhf.reward_model or cfg.rlhf.reward_dataset)


def _flatten(groups: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [example for group in groups for example in group]


def load_run_data(cfg: RunConfig, base_dir: str | Path | None = None) -> RunData:
    """Read, check (every row), split and prepare the run's dataset; DatasetError before any
    model is loaded when it does not fit the method."""
    d = cfg.dataset
    source = dataset_source(cfg)
    rows = read_rows(source, split=d.split, subset=d.subset, base_dir=base_dir)
    fmt = detect_format(rows, source, declared=d.format)
    check_method(fmt, cfg.method, has_reward_model=_reward_from_elsewhere(cfg), source=source)
    groups = prepare_groups(rows, fmt, cfg.method, source=source)
    fraction = 0.0 if d.eval_path else d.eval_fraction
    train, held = split_rows(
        groups, eval_fraction=fraction, seed=d.seed, shuffle=d.shuffle, max_samples=d.max_samples
    )
    eval_rows = _flatten(held) or None
    if d.eval_path:
        eval_rows = _load_eval(cfg, d.eval_path, base_dir)
    return RunData(_flatten(train), eval_rows, fmt, source, d.eval_path)


def _load_eval(cfg: RunConfig, eval_path: str, base_dir: str | Path | None) -> list[dict[str, Any]]:
    d = cfg.dataset
    rows = read_rows(eval_path, split=d.split, subset=d.subset, base_dir=base_dir)
    fmt = detect_format(rows, eval_path, declared=d.format)
    check_method(fmt, cfg.method, has_reward_model=_reward_from_elsewhere(cfg), source=eval_path)
    return prepare_rows(rows, fmt, cfg.method, source=eval_path)


def load_reward_data(cfg: RunConfig, base_dir: str | Path | None = None) -> RunData:
    """rlhf: the reward model's chosen/rejected pairs, from ``rlhf.reward_dataset`` or else the
    run's dataset, split with the dataset's eval_fraction and seed."""
    d = cfg.dataset
    own = cfg.rlhf.reward_dataset
    source = own or dataset_source(cfg)
    if own:
        rows = read_rows(own, base_dir=base_dir)
        fmt = detect_format(rows, own)
    else:
        rows = read_rows(source, split=d.split, subset=d.subset, base_dir=base_dir)
        fmt = detect_format(rows, source, declared=d.format)
    groups = prepare_groups(rows, fmt, "rlhf", "reward", source=source)
    train, held = split_rows(
        groups,
        eval_fraction=d.eval_fraction,
        seed=d.seed,
        shuffle=d.shuffle,
        max_samples=d.max_samples,
    )
    return RunData(_flatten(train), _flatten(held) or None, fmt, source)
