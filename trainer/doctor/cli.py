"""`python -m trainer doctor --config C [--json] [--sample N]`.

With --json, stdout carries JSON lines only (what the desktop reads, DESIGN.md §8):
``{"event": "progress", "done": n, "total": m}`` while tokenising, then one
``{"event": "result", ...}`` (DoctorReport.as_json), or ``{"event": "error", "message", "hint"}``
with exit 2 for a config or dataset the user can fix. Anything a library prints goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.config import ConfigError, load_config
from trainer.doctor.report import DEFAULT_SAMPLES
from trainer.jsonl import EventWriter

EXIT_OK, EXIT_USER_ERROR = 0, 2


def add_doctor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="run config JSON file")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout (for the desktop)")
    p.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLES,
        help=f"rows rendered with their marks (default {DEFAULT_SAMPLES})",
    )


def cmd_doctor(ns: argparse.Namespace) -> int:
    from trainer.data.formats import DatasetError
    from trainer.doctor.report import run_doctor

    sample = max(0, int(ns.sample))
    if not ns.json:
        report = run_doctor(load_config(ns.config), base_dir=Path.cwd(), sample=sample)
        print(report.text())
        return EXIT_OK
    out = sys.stdout
    emit = EventWriter(out)
    sys.stdout = sys.stderr  # a library's print() must not break the JSON stream
    try:
        report = run_doctor(
            load_config(ns.config),
            base_dir=Path.cwd(),
            sample=sample,
            progress=lambda done, total: emit("progress", done=done, total=total),
        )
        emit("result", **report.as_json())
        return EXIT_OK
    except (ConfigError, DatasetError) as err:
        problems = [str(p) for p in getattr(err, "problems", None) or [str(err)]]
        source = getattr(err, "source", None)
        message = "\n".join(f"{source}: {p}" if source else p for p in problems)
        emit("error", message=message, hint=getattr(err, "hint", "") or "")
        return EXIT_USER_ERROR
    finally:
        sys.stdout = out
