"""Prompt sets for the Try tab: prompts read from a file (with their reference answers where the
file has them), and a finished set written as JSONL or CSV.

A ``.txt`` file is one prompt a line. Any dataset file the trainer reads (JSONL, JSON, CSV,
Parquet) is read and prepared by the trainer's own light data modules, so a chat row's prompt is
every turn before its last answer, and that answer is the reference, exactly as a run would
split it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the method whose preparation turns each format into prompt + answer
_METHOD_FOR = {"prompt": "grpo", "preference": "dpo", "kto": "kto"}
MAX_PROMPTS = 10_000


@dataclass
class PromptRow:
    prompt: list[dict[str, str]] | str  # chat turns, or plain text
    reference: str | None = None
    answers: dict[str, str] = field(default_factory=dict)  # model label -> answer

    @property
    def shown(self) -> str:
        """The prompt as one line of a table: the last user turn of a conversation."""
        if isinstance(self.prompt, str):
            return self.prompt
        users = [t["content"] for t in self.prompt if t.get("role") == "user"]
        return users[-1] if users else (self.prompt[-1]["content"] if self.prompt else "")


def typed_prompts(text: str) -> list[PromptRow]:
    """One prompt a non-empty line, each a user turn."""
    return [
        PromptRow([{"role": "user", "content": line.strip()}])
        for line in text.splitlines()
        if line.strip()
    ][:MAX_PROMPTS]


def read_prompt_file(path: Path) -> list[PromptRow]:
    """The prompts of ``path``; DatasetError naming the file and row when it cannot be used."""
    # on first use: the Try tab that calls this is built before the window's first paint
    from trainer.chat.rows import reference_of
    from trainer.data.formats import DatasetError, detect_format
    from trainer.data.prepare import prepare_rows
    from trainer.data.readers import read_rows

    if path.suffix.lower() == ".txt":
        try:
            return typed_prompts(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError([f"{path}: cannot be read as UTF-8 text ({err})"]) from err
    rows = read_rows(str(path))
    fmt = detect_format(rows, str(path))
    if fmt == "text":
        raise DatasetError(
            [f"{path}: plain 'text' rows hold no prompt"],
            "use a file of prompts (one a line in a .txt file) or rows with a prompt or messages",
        )
    prepared = prepare_rows(rows, fmt, _METHOD_FOR.get(fmt, "sft"), source=str(path))
    out = []
    for row in prepared[:MAX_PROMPTS]:
        if row.get("prompt") is not None:
            out.append(PromptRow(row["prompt"], reference_of(row)))
    return out


def rows_from_events(rows: Sequence[dict[str, Any]]) -> list[PromptRow]:
    """The chat verb's ``rows`` event as prompt rows."""
    return [PromptRow(r["prompt"], r.get("reference")) for r in rows]


def write_jsonl(path: Path, rows: Sequence[PromptRow], labels: Sequence[str]) -> None:
    """One object a row: prompt (as sent), reference, and each model's answer by its label."""
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            record = {
                "prompt": row.prompt,
                "reference": row.reference,
                "answers": {label: row.answers.get(label) for label in labels},
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_csv(path: Path, rows: Sequence[PromptRow], labels: Sequence[str]) -> None:
    """Columns prompt, reference, then one per model (the prompt as shown in the table)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["prompt", "reference", *labels])
        for row in rows:
            writer.writerow(
                [row.shown, row.reference or "", *(row.answers.get(name, "") for name in labels)]
            )
