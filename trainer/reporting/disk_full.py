"""A run that ended because its disk filled up: recognised, and said plainly.

The error rarely says so itself. Python's own writes raise ``OSError(ENOSPC)``, but torch's
checkpoint writer turns the same event into ``RuntimeError: ... unexpected pos N vs M`` or
``basic_ios::clear: iostream error``. So: an ENOSPC/EDQUOT anywhere in the exception chain, or an
I/O-looking error while the output folder's disk has (almost) nothing left, is a full disk.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

from trainer.checkpoints import checkpoint_folders, incomplete_reason

NOTE_PREFIX = "tunedeck: "
# What "almost nothing left" means for an error that does not carry ENOSPC itself.
LOW_SPACE_BYTES = 32 * 1024 * 1024
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` ended the run because the disk holding ``folder`` is full."""
    chain = _chain(exc)
    if any(isinstance(e, OSError) and e.errno in _FULL_ERRNOS for e in chain):
        return True
    if not any(isinstance(e, OSError | RuntimeError) for e in chain):
        return False
    free = _free_bytes(folder)
    return free is not None and free < LOW_SPACE_BYTES


def _cut_short_checkpoint(folder: Path) -> Path | None:
    newest = next(iter(checkpoint_folders(folder)), None)
    return newest if newest is not None and incomplete_reason(newest) else None


def disk_full_fields(exc: BaseException, folder: Path) -> dict[str, Any]:
    """job_failed fields naming the full disk and the folder (empty when the disk is not full).
    The message is also noted on ``exc`` (``disk_full_note``)."""
    if not is_disk_full(exc, folder):
        return {}
    free = _free_bytes(folder)
    left = f"{free} bytes free" if free is not None else "free space unknown"
    cut = _cut_short_checkpoint(folder)
    what = (
        f"while saving {cut.name}, which is incomplete (a resume skips it)"
        if cut is not None
        else "while writing the run's files (event log or checkpoint)"
    )
    message = f"the disk is full: no space left on device in {folder} ({left}) {what}"
    # for the command line: one line instead of the traceback of every layer that saw it
    exc.add_note(NOTE_PREFIX + message)
    return {
        "error_type": "disk_full",
        "error_message": message,
        "hint": f"Free space on the disk that holds {folder}, or set output.output_dir to a folder "
        "on a disk with room; then resume (checkpoint.resume_from_checkpoint = 'latest').",
    }


def disk_full_note(exc: BaseException) -> str | None:
    """The message ``disk_full_fields`` noted on ``exc``, if it did."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(NOTE_PREFIX + "the disk is full"):
            return note.removeprefix(NOTE_PREFIX)
    return None
