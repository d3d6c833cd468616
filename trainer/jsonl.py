"""The trainer verbs' JSON lines (DESIGN.md §8): the desktop runs ``doctor``, ``chat`` and
``export`` as subprocesses and reads one event a line from their stdout. Light: the standard
library and ``trainer.events`` only.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

from trainer.events import json_safe


class EventWriter:
    """``emit("progress", done=3, total=9)`` writes ``{"event": "progress", ...}`` and flushes it
    at once, from any thread. Strict JSON: a non-finite number travels as null. ``stream=None``
    stays silent (a verb's code run in-process)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        if self.stream is None:
            return
        line = json.dumps(json_safe({"event": event, **fields}), ensure_ascii=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
