"""Tokens a run trains on, counted cheaply: characters / 4, without a tokenizer.

Four characters per token is the usual rule of thumb for English with BPE tokenizers (OpenAI,
"What are tokens and how to count them"; GPT-2's and Llama's BPE land at 3.5-4.5 on English
prose). Each row counts the characters of every string in it (chosen and rejected both, since
both are forwarded; a preference row's prompt twice, once with each answer), capped at
``training.max_length`` per sequence as the trainer truncates. Only local files are counted:
URLs and Hub datasets are not read in the desktop process (the estimate says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.data.readers import Row, read_rows, source_kind

CHARS_PER_TOKEN = 4.0
# The longest sequence sets the memory peak, which must not come out low: it is counted at
# 3 characters per token plus 16 tokens of chat-template markup (role headers, end tokens).
LONGEST_CHARS_PER_TOKEN, TEMPLATE_TOKENS = 3.0, 16


@dataclass(frozen=True)
class DatasetTokens:
    rows: int
    tokens: int  # trained tokens in one pass (every row, capped per sequence)
    longest: int  # tokens of the longest sequence (counted high), capped at max_length
    method: str  # how they were counted, in words


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


def row_sequences(data: dict[str, Any]) -> list[int]:
    """Characters of each sequence the row becomes (two for a preference pair)."""
    if "chosen" in data and "rejected" in data:
        prompt = _chars(data.get("prompt"))
        return [prompt + _chars(data["chosen"]), prompt + _chars(data["rejected"])]
    return [_chars(data)]


def count_tokens(rows: list[Row], max_length: int) -> DatasetTokens:
    total = longest = 0
    for row in rows:
        for chars in row_sequences(row.data):
            total += min(max_length, max(1, math.ceil(chars / CHARS_PER_TOKEN)))
            worst = math.ceil(chars / LONGEST_CHARS_PER_TOKEN) + TEMPLATE_TOKENS
            longest = max(longest, min(max_length, worst))
    return DatasetTokens(
        len(rows), total, longest, f"characters / {CHARS_PER_TOKEN:g}, capped at max_length"
    )


def dataset_tokens(cfg: RunConfig, base_dir: Path | None = None) -> DatasetTokens | None:
    """Tokens of the training rows (after ``max_samples`` and the eval hold-out), or None when
    the dataset is not a local file."""
    source = cfg.dataset.path
    if source_kind(source, base_dir) != "local":
        return None
    rows = read_rows(source, split=cfg.dataset.split, base_dir=base_dir)
    if cfg.dataset.max_samples is not None:
        rows = rows[: cfg.dataset.max_samples]
    counted = count_tokens(rows, cfg.training.max_length)
    keep = 1.0 if cfg.dataset.eval_path else 1.0 - cfg.dataset.eval_fraction
    return DatasetTokens(
        max(1, round(counted.rows * keep)),
        round(counted.tokens * keep),
        counted.longest,
        counted.method,
    )
