"""The run's rows as prompts with reference answers: the held-out (eval) rows for a prompt set,
or the training rows. Read and split exactly as the run did (``trainer.data.load_run_data``:
same reader, format detection, preparation and seeded split), so "held out" means the rows the
model did not train on. Light at import time: the app reads prompt files with ``reference_of``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.config import RunConfig

# where the prepared rows of each method keep the answer the data holds
REFERENCE_FIELDS = ("completion", "chosen", "reference")


def reference_of(row: dict[str, Any]) -> str | None:
    """The answer a prepared row holds (completion, chosen or reference), as text."""
    from trainer.data.prepare import text_of

    for key in REFERENCE_FIELDS:
        value = row.get(key)
        if value is not None and not (key == "completion" and row.get("label") is False):
            return text_of(value)
    return None


def run_rows(
    cfg: RunConfig, split: str, limit: int, base_dir: Path | None = None
) -> tuple[list[dict[str, Any]], int, str]:
    """(rows as ``{"index", "prompt", "reference"}``, how many the split has, a note)."""
    from trainer.data import load_run_data

    data = load_run_data(cfg, base_dir)
    rows = data.train if split == "train" else (data.eval or [])
    note = ""
    if split == "eval" and not data.eval:
        note = (
            "the run held no rows out (dataset.eval_fraction was 0 and no eval_path): "
            "type prompts or load a file instead"
        )
    with_prompt = [(n, r) for n, r in enumerate(rows) if r.get("prompt") is not None]
    if rows and not with_prompt:
        note = (
            f"the {data.fmt} rows of this run have no prompt (plain text): type prompts or "
            "load a file instead"
        )
    out = [
        {"index": n, "prompt": r["prompt"], "reference": reference_of(r)}
        for n, r in with_prompt[:limit]
    ]
    return out, len(with_prompt), note
