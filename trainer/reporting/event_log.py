"""The run's event log: ``events.jsonl`` in the output folder, one numbered line per event.

Every metric point and alert is written here before anything is sent over the network, so the
log is the record: a receiver that was down, a desktop that cannot be reached (it reads the log
through the pod agent instead) and the sender's own recovery of dropped points all read it.

Line format (trainer/events.py):
``{"seq": N, "kind": "metric" | "alert", "job_id": "...", "data": {...}}``. ``seq`` starts at 1
and keeps counting across processes that share the output folder (a resumed run continues the
numbering). ``job_id`` says whose event a line is: two jobs started into the same folder would
otherwise mix their points for every reader (the app's, the pod agent's, the sender's recovery).

Durability: every line is flushed to the operating system as it is written, so a crash of the
process loses nothing and a reader tailing the file sees each line at once. Alerts (rare, and the
ones a user acts on) are also fsync'd; metric points are fsync'd at most every ``SYNC_SECONDS``
and on close, so a power cut can lose the last few seconds of points but never an alert.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SYNC_SECONDS = 10.0
# Enough to hold a few complete lines even when metric points carry many extras.
_TAIL_BYTES = 64 * 1024


class EventLog:
    """Append-only, thread-safe writer of numbered events, each tagged with ``job_id``."""

    def __init__(self, path: Path, job_id: str) -> None:
        self.path = Path(path)
        self.job_id = job_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = last_seq(self.path)
        self._file = self.path.open("ab")
        self._last_sync = time.monotonic()
        self._repair_torn_tail()

    @property
    def seq(self) -> int:
        """The number of the last line written (0 for an empty log)."""
        return self._seq

    @property
    def closed(self) -> bool:
        return self._file.closed

    def append(self, kind: str, data: dict[str, Any]) -> int:
        """Write one event and return its sequence number (ValueError / TypeError, and nothing
        written, when ``data`` is not strict JSON)."""
        with self._lock:
            if self._file.closed:
                raise ValueError(f"event log {self.path} is closed")
            # encoded before the number is taken: an event that is not strict JSON raises here
            # and leaves no gap in the numbering
            line = json.dumps(
                {"seq": self._seq + 1, "kind": kind, "job_id": self.job_id, "data": data},
                separators=(",", ":"),
                allow_nan=False,
            )
            self._seq += 1
            self._file.write(line.encode("utf-8") + b"\n")
            self._file.flush()
            now = time.monotonic()
            if kind == "alert" or now - self._last_sync >= SYNC_SECONDS:
                os.fsync(self._file.fileno())
                self._last_sync = now
            return self._seq

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                except OSError as err:  # a full disk; the run's own failure alert says so
                    sys.stderr.write(f"tunedeck: {self.path} lost its last lines: {err}\n")
                finally:
                    with contextlib.suppress(OSError):
                        self._file.close()

    def _repair_torn_tail(self) -> None:
        # A process killed mid-write leaves a line without its newline; the next line must not be
        # glued onto it. Readers skip the torn line.
        size = self.path.stat().st_size
        if size == 0:
            return
        with self.path.open("rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                self._file.write(b"\n")
                self._file.flush()


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
        return None
    return event


def last_seq(path: Path) -> int:
    """The highest ``seq`` in the log at ``path`` (0 when there is none)."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    with path.open("rb") as f:
        if size > _TAIL_BYTES:
            f.seek(size - _TAIL_BYTES)
            tail = f.read().split(b"\n")[1:]  # the first piece may start mid-line
            found = [int(e["seq"]) for raw in tail if (e := _parse(raw))]
            if found:
                return max(found)
            f.seek(0)
        return max((int(e["seq"]) for raw in f if (e := _parse(raw))), default=0)


def iter_events(path: Path, after: int = 0, job_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Events with ``seq > after``, in file order; torn or foreign lines are skipped. With
    ``job_id``, only that job's lines (a line without one, from an older trainer, is skipped)."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        for raw in f:
            event = _parse(raw)
            if event is None or event["seq"] <= after:
                continue
            if job_id is None or event.get("job_id") == job_id:
                yield event
