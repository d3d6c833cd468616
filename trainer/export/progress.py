"""The export verb's events: one JSON object per line on stdout, flushed at once.

``{"event": "stage", "stage": "merge", "message": "..."}`` when a stage begins,
``{"event": "progress", "stage": "gguf", "done": 3, "total": 12, "bytes": 123}`` as it moves,
``{"event": "done", "kind": "gguf", "path": "...", "files": [...], "bytes": N}`` at the end,
``{"event": "error", "message": "...", "hint": "..."}`` for a failure a user can fix.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from trainer.jsonl import EventWriter


class Progress:
    """Writes export events as JSON lines (``stream=None``: stays silent, for in-process use)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.emit = EventWriter(stream)

    def stage(self, stage: str, message: str) -> None:
        self.emit("stage", stage=stage, message=message)

    def step(self, stage: str, done: int, total: int, nbytes: int | None = None) -> None:
        fields: dict[str, Any] = {"stage": stage, "done": done, "total": total}
        if nbytes is not None:
            fields["bytes"] = nbytes
        self.emit("progress", **fields)


SILENT = Progress(None)


def stdout_progress() -> Progress:
    return Progress(sys.stdout)
