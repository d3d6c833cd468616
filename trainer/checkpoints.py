"""Which ``checkpoint-N`` folders in an output folder can be resumed from. Light: no torch.

A checkpoint is complete when Hugging Face's Trainer finished writing it.
``Trainer._save_checkpoint`` writes, in this order: the model (``model.safetensors``, or
``adapter_model.safetensors`` for LoRA; large models as shards plus an ``*.index.json``), config
and tokenizer files; then ``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth``; and
``trainer_state.json`` LAST. So a folder cut short (a full disk, a kill) lacks
``trainer_state.json`` or holds a truncated one, or, when the disk filled while the weights were
written and the error was lost, has a safetensors file shorter than its own header says. Such a
folder is never resumed from: ``resume_from_checkpoint: latest`` skips it and says so.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("trainer.checkpoints")

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")
# What holds the weights, whole or sharded, in what save_model writes
_WEIGHTS = (
    "model.safetensors",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "adapter_model.bin",
)
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_step(folder: Path) -> int | None:
    """N of a ``checkpoint-N`` folder name, else None."""
    m = _NAME.match(folder.name)
    return int(m.group(1)) if m else None


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """Every ``checkpoint-N`` folder in ``output_dir``, newest (highest N) first."""
    if not output_dir.is_dir():
        return []
    found = [(step, p) for p in output_dir.iterdir() if (step := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found, reverse=True) if p.is_dir()]


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when it is one."""
    state_path = folder / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {STATE_FILE} (the Trainer writes it last: the save was cut short)"
    except (OSError, ValueError) as err:
        return f"{STATE_FILE} is unreadable or truncated ({err})"
    step = checkpoint_step(folder)
    if not isinstance(state, dict) or (step is not None and state.get("global_step") != step):
        return f"{STATE_FILE} does not describe step {step}"
    weights = [folder / name for name in _WEIGHTS if (folder / name).is_file()]
    if not weights and not any((folder / name).is_file() for name in _SHARD_INDEXES):
        return "no model or adapter weights in it"
    for path in weights:
        if path.suffix == ".safetensors":
            problem = _safetensors_problem(path)
            if problem:
                return f"{path.name} {problem}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensor bytes; the
    header's largest end offset says how long the file must be."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return "is empty or cut short"
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > size - 8:
                return "is cut short (inside its header)"
            header = json.loads(f.read(header_len))
    except (OSError, ValueError) as err:
        return f"cannot be read ({err})"
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        return f"is cut short ({size} of {expected} bytes)"
    return None


def latest_complete_checkpoint(
    output_dir: Path, report: Callable[[str], None] | None = None
) -> Path | None:
    """The newest complete checkpoint in ``output_dir``; each newer, incomplete one is skipped
    and named through ``report`` (default: a warning in the trainer's log)."""
    say = report or log.warning
    for folder in checkpoint_folders(output_dir):
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        say(f"skipping {folder}: not a complete checkpoint, {reason}")
    return None
