"""`python -m trainer validate`: everything about a run that can be checked without a model.

The config has already parsed (that is where field and cross-field problems show); this adds
what depends on the machine (CUDA, bitsandbytes), on files (checkpoints, reward functions), and
on the data: its format, row count and problems, for the training set and any other set the run
reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import RunConfig


@dataclass
class DatasetSummary:
    role: str  # "train", "eval", "reward"
    source: str
    format: str | None
    rows: int
    problems: list[str]
    examples: int | None = None  # what the rows become for the method (chat turns, pairs)
    hint: str = ""


@dataclass
class ValidationReport:
    method: str
    model: str
    datasets: list[DatasetSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows of the training set."""
        return sum(d.rows for d in self.datasets if d.role == "train")

    def text(self) -> str:
        lines = [f"method: {self.method}", f"model: {self.model}"]
        for d in self.datasets:
            lines += [
                f"{d.role} dataset: {d.source}",
                f"  format: {d.format or 'unknown'}",
                f"  rows: {d.rows}",
            ]
            if d.examples is not None and d.examples != d.rows:
                lines.append(f"  training examples: {d.examples}")
            lines += [f"  problem: {p}" for p in d.problems]
            if d.hint:
                lines.append(f"  hint: {d.hint}")
        lines.append("ok" if not self.problems else f"{len(self.problems)} problem(s)")
        return "\n".join(lines)


def _inspect(
    role: str, source: str, cfg: RunConfig, base_dir: Path, *, reward_elsewhere: bool
) -> DatasetSummary:
    from trainer.data import inspect_dataset

    own_settings = role != "reward"  # the reward set is a file of its own, format detected
    report = inspect_dataset(
        source,
        cfg.method,
        cfg.dataset.format if own_settings else "auto",
        preview=0,
        base_dir=base_dir,
        split=cfg.dataset.split if own_settings else "train",
        subset=cfg.dataset.subset if own_settings else None,
        has_reward_model=reward_elsewhere,
        load_hub=True,  # `validate` is where a Hub dataset gets read before a run
    )
    problems = list(report.problems)
    if not problems and report.fmt is None:
        problems = [f"{source}: no rows to train on"]
    return DatasetSummary(
        role=role,
        source=source,
        format=report.fmt,
        rows=report.num_rows,
        problems=problems,
        examples=report.num_examples,
        hint=report.hint if problems else "",
    )


def validate_run(cfg: RunConfig, base_dir: Path) -> ValidationReport:
    """The report `validate` prints; ``problems`` empty means the run can start."""
    from trainer.run import preflight_problems, resolve_paths

    base_dir = base_dir.resolve()
    cfg = resolve_paths(cfg, base_dir)
    report = ValidationReport(method=cfg.method, model=cfg.model.name_or_path)
    report.problems.extend(preflight_problems(cfg, base_dir))

    rlhf = cfg.method == "rlhf"
    # rlhf takes any prompts when its reward comes from a named model or a separate pair file
    elsewhere = rlhf and bool(cfg.rlhf.reward_model or cfg.rlhf.reward_dataset)
    sets = [("train", os.environ.get("DATASET_URL", "").strip() or cfg.dataset.path, elsewhere)]
    if cfg.dataset.eval_path:
        sets.append(("eval", cfg.dataset.eval_path, elsewhere))
    if rlhf and not cfg.rlhf.reward_model and cfg.rlhf.reward_dataset:
        sets.append(("reward", cfg.rlhf.reward_dataset, False))
    for role, source, reward_elsewhere in sets:
        summary = _inspect(role, source, cfg, base_dir, reward_elsewhere=reward_elsewhere)
        report.datasets.append(summary)
        # on stderr each line must say which file it is about
        report.problems.extend(
            p if p.startswith(summary.source) else f"{summary.source}: {p}"
            for p in summary.problems
        )
    return report
