"""CSV export of metric points: the one exporter behind `tunedeck export` and the charts' Export.

One row per job and step. Columns: ``job_id``, ``job`` (its name), ``step``, the contract's
fields in their order (always present, so a script can rely on them), ``timestamp``, then every
other field any row has (a method's own figures, strings included) in name order. Missing
values are empty cells; nested values are written as JSON.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from trainer.events import METRIC_FIELDS

LEADING_COLUMNS: tuple[str, ...] = ("job_id", "job", "step")
NAMED_COLUMNS: tuple[str, ...] = (*METRIC_FIELDS, "timestamp")


@dataclass(frozen=True)
class JobRows:
    """One job's points for export: its id, the name shown for it, and its rows by step."""

    job_id: str
    label: str
    rows: Sequence[Mapping[str, Any]]


def csv_columns(jobs: Iterable[JobRows]) -> list[str]:
    """The header for these jobs' rows."""
    fixed = {*LEADING_COLUMNS, *NAMED_COLUMNS}
    extras = {key for job in jobs for row in job.rows for key in row} - fixed
    return [*LEADING_COLUMNS, *NAMED_COLUMNS, *sorted(extras)]


def write_metrics_csv(jobs: Sequence[JobRows], out: IO[str]) -> int:
    """Write the rows of every job (in the order given, each by step); the rows written."""
    columns = csv_columns(jobs)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    written = 0
    for job in jobs:
        for row in sorted(job.rows, key=lambda r: r.get("step", 0)):
            cells = {**row, "job_id": job.job_id, "job": job.label}
            writer.writerow([_cell(cells.get(column)) for column in columns])
            written += 1
    return written


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        return json.dumps(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""  # JSON has none either: a non-finite value is no value (DESIGN decision 4)
        return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)
