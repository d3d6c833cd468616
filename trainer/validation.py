"""`python -m trainer validate`: everything about a run that can be checked without a model.

The config has already parsed (that is where field and cross-field problems show); this adds
what depends on the machine (CUDA, bitsandbytes), on files (checkpoints, reward functions), and
on the data: its format, row count and problems, for the training set and any other set the run
reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import RunConfig


@dataclass
class DatasetSummary:
    role: str  # "train", "eval", "reward"
    source: str
    format: str | None
    rows: int
    problems: list[str]


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
            lines += [f"  problem: {p}" for p in d.problems]
        lines.append("ok" if not self.problems else f"{len(self.problems)} problem(s)")
        return "\n".join(lines)


def _inspect(role: str, source: str, method: str, cfg: RunConfig, base_dir: Path) -> DatasetSummary:
    from trainer.data import inspect_dataset

    report: Any = inspect_dataset(source, method, cfg=cfg, base_dir=base_dir)
    return DatasetSummary(
        role=role,
        source=source,
        format=getattr(report, "format", None),
        rows=int(getattr(report, "rows", 0) or 0),
        problems=[str(p) for p in getattr(report, "problems", [])],
    )


def validate_run(cfg: RunConfig, base_dir: Path) -> ValidationReport:
    """The report `validate` prints; ``problems`` empty means the run can start."""
    from trainer.run import preflight_problems, resolve_paths

    base_dir = base_dir.resolve()
    cfg = resolve_paths(cfg, base_dir)
    report = ValidationReport(method=cfg.method, model=cfg.model.name_or_path)
    report.problems.extend(preflight_problems(cfg, base_dir))

    sets = [("train", cfg.dataset.path, cfg.method)]
    if cfg.dataset.eval_path:
        sets.append(("eval", cfg.dataset.eval_path, cfg.method))
    if cfg.method == "rlhf" and not cfg.rlhf.reward_model and cfg.rlhf.reward_dataset:
        sets.append(("reward", cfg.rlhf.reward_dataset, "rlhf"))
    for role, source, method in sets:
        summary = _inspect(role, source, method, cfg, base_dir)
        report.datasets.append(summary)
        report.problems.extend(summary.problems)
    return report
