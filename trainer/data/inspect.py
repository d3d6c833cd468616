"""A dataset's report card for the desktop's dataset picker and `python -m trainer validate`.

``inspect_dataset`` never raises for a problem in the data: whatever is wrong ends up in the
report's ``problems``. Light module: the desktop imports it. It reads a Hugging Face dataset
only when asked (``load_hub=True``), because that needs the ``datasets`` library, which the
desktop process must never load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.data.formats import (
    DatasetError,
    clipped,
    method_hint,
    method_problem,
    scan_rows,
)
from trainer.data.prepare import prepare_groups
from trainer.data.readers import Row, read_rows, source_kind


@dataclass
class DatasetReport:
    """What a look at every row found. ``ok`` is True when nothing stands in the way;
    ``checked`` is False when the rows were not read here (a Hub dataset in the desktop)."""

    source: str
    fmt: str | None = None
    num_rows: int = 0
    columns: list[str] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hint: str = ""
    ok: bool = False
    checked: bool = True
    method: str | None = None
    num_examples: int | None = None  # training examples the rows become for ``method``

    def text(self) -> str:
        """A few lines for a terminal or a tooltip."""
        if not self.checked:
            return f"{self.source}: not read here. {self.hint}"
        head = f"{self.source}: {self.num_rows} rows"
        if self.fmt:
            head += f', format "{self.fmt}"'
        if self.columns:
            head += f" (columns: {', '.join(clipped(c) for c in self.columns)})"
        lines = [head]
        if self.method and self.ok:
            made = (
                ""
                if self.num_examples in (None, self.num_rows)
                else (f" ({self.num_examples} training examples)")
            )
            lines.append(f"ok for {self.method}{made}")
        elif self.ok:
            lines.append("ok")
        lines.extend(f"problem: {p}" for p in self.problems)
        if self.hint and not self.ok:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


def _columns(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.data:
            if key not in seen:
                seen[key] = None
    return list(seen)


def inspect_dataset(
    source: str,
    method: str | None = None,
    fmt: str = "auto",
    *,
    preview: int = 5,
    base_dir: str | Path | None = None,
    split: str = "train",
    subset: str | None = None,
    has_reward_model: bool = False,
    load_hub: bool = False,
) -> DatasetReport:
    """Read ``source`` and judge every row: its format (``fmt`` "auto" detects it), each
    row's fields, and, given ``method``, whether that method can train on it.

    ``has_reward_model``: rlhf with its reward from elsewhere (then any prompts will do)."""
    report = DatasetReport(source=source, method=method)
    if source_kind(source, base_dir) == "hub" and not load_hub:
        report.checked = False
        report.ok = True
        report.hint = (
            f"no local file {source!r}, so it is taken as a Hugging Face dataset id: its rows "
            "are read and checked when the run starts (or by `python -m trainer validate`)"
        )
        return report
    try:
        rows = read_rows(source, split=split, subset=subset, base_dir=base_dir)
    except DatasetError as err:
        report.problems, report.hint = err.problems, err.hint
        return report
    report.num_rows = len(rows)
    report.columns = _columns(rows)
    report.preview = [dict(r.data) for r in rows[: max(0, preview)]]

    scan = scan_rows(rows, fmt)
    report.fmt = scan.fmt
    report.problems, report.hint = scan.problems.lines(), scan.hint
    if scan.problems or scan.fmt is None or method is None:
        report.ok = not scan.problems and scan.fmt is not None
        return report

    problem = method_problem(scan.fmt, method, has_reward_model=has_reward_model)
    if problem:
        report.problems, report.hint = [problem], method_hint(scan.fmt)
        return report
    try:
        groups = prepare_groups(rows, scan.fmt, method, source=source)
    except DatasetError as err:
        report.problems, report.hint = err.problems, err.hint
        return report
    report.num_examples = sum(len(g) for g in groups)
    report.ok = True
    return report
