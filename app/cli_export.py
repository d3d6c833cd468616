"""``tunedeck export-model JOB --merged DIR | --gguf f16|q8_0 DIR | --hub OWNER/NAME``.

The same export as the GUI's Export dialog: ``python -m trainer export`` in the training
Python (app.core.model_export), with its progress shown as a bar on a terminal or plain lines
elsewhere, the size of what was written at the end, Ctrl-C to cancel (nothing half-written is
left), and a non-empty DIR refused unless ``--force``. The Hub token is HF_TOKEN when set, else
the one stored in the keyring.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from app.core.model_export import (
    GGUF_TYPES,
    ExportRefused,
    ExportRequest,
    human_size,
    remove_partials,
    start_export,
)
from app.core.store import Store
from app.core.trainer_python import launch_python
from app.core.trainer_subprocess import TrainerProcess, TrainerProcessError

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR, EXIT_CANCELLED = 0, 1, 2, 130
IDLE_LIMIT_S = 3600.0  # a merge of a large model can be silent for a long time, not for hours


def add_commands(sub: Any) -> dict[str, Any]:
    p = sub.add_parser(
        "export-model",
        help="a finished job's model: merged safetensors, GGUF + Ollama Modelfile, or the Hub",
    )
    p.add_argument("job", help="job id (or its first characters)")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--merged", metavar="DIR", help="adapter merged into its base, safetensors")
    kind.add_argument(
        "--gguf",
        nargs=2,
        metavar=("TYPE", "DIR"),
        help=f"GGUF ({' or '.join(GGUF_TYPES)}) and an Ollama Modelfile",
    )
    kind.add_argument("--hub", metavar="REPO", help="push to the Hugging Face Hub (owner/name)")
    p.add_argument("--public", action="store_true", help="create the Hub repository as public")
    p.add_argument("--adapter-only", action="store_true", help="push the adapter, not merged")
    p.add_argument("--checkpoint", type=int, default=None, help="export checkpoint-N instead")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    p.add_argument("--python", default=None, help="Python that runs the trainer")
    return {"export-model": cmd_export_model}


def request_from(args: argparse.Namespace) -> ExportRequest:
    if args.hub:
        return ExportRequest(
            "hub",
            args.hub,
            public=args.public,
            adapter_only=args.adapter_only,
            checkpoint=args.checkpoint,
        )
    if args.gguf:
        gguf_type, folder = args.gguf
        if gguf_type not in GGUF_TYPES:
            raise ExportRefused(f"--gguf {gguf_type!r}: choose one of {', '.join(GGUF_TYPES)}")
        return ExportRequest(
            "gguf", folder, gguf_type=gguf_type, force=args.force, checkpoint=args.checkpoint
        )
    return ExportRequest("merged", args.merged, force=args.force, checkpoint=args.checkpoint)


def _hub_token() -> str | None:
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from app.core.credentials import CredentialStore, read_secret

    return asyncio.run(read_secret(CredentialStore(), "hf_token"))


class ExportDisplay:
    """Stage lines, a progress line every few seconds (or per tensor on a terminal), the end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._last = 0.0
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None

    def show(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        say = self.console.print
        if kind == "stage":
            say(f"{event.get('message')}", markup=False, highlight=False)
        elif kind == "progress":
            now = time.monotonic()
            finished = event.get("done") == event.get("total")
            if finished or now - self._last >= (0.2 if self.console.is_terminal else 5.0):
                self._last = now
                size = human_size(float(event.get("bytes") or 0))
                say(f"  {event.get('done')}/{event.get('total')} tensors, {size}", markup=False)
        elif kind == "note":
            say(f"note: {event.get('message')}", markup=False, highlight=False)
        elif kind == "done":
            self.result = event
        elif kind == "error":
            self.error = event


def cmd_export_model(args: argparse.Namespace, console: Console) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        request = request_from(args)
        with Store() as store:
            job = store.find_job(args.job)
        python = launch_python(args.python)
    except ExportRefused as refused:
        return _refused(err, refused)
    token = _hub_token() if request.kind == "hub" else None
    display = ExportDisplay(console)
    with tempfile.TemporaryDirectory(prefix="tunedeck-export-") as scratch:
        try:
            process = start_export(
                job, request, python=python, scratch=Path(scratch), hf_token=token
            )
        except ExportRefused as refused:
            return _refused(err, refused)
        except TrainerProcessError as failed:
            err.print(f"error: {failed}", markup=False)
            return EXIT_FAILED
        code = _follow(process, display)
    if display.result is not None and code == EXIT_OK:
        _summary(console, display.result)
        return EXIT_OK
    if process.cancelled or code == EXIT_CANCELLED:
        remove_partials(request)  # in case it was killed before it could clean up
        err.print("export cancelled; nothing was written", markup=False)
        return EXIT_CANCELLED
    if display.error is not None:
        err.print(f"error: {display.error.get('message')}", markup=False)
        if display.error.get("hint"):
            err.print(f"hint: {display.error['hint']}", markup=False)
    return code or EXIT_FAILED


def _follow(process: TrainerProcess, display: ExportDisplay) -> int:
    """Show events until the process ends; Ctrl-C cancels it. Returns its exit code."""
    try:
        for event in process.events(idle_timeout_s=IDLE_LIMIT_S):
            display.show(event)
    except KeyboardInterrupt:
        process.cancel()
        return EXIT_CANCELLED
    except TrainerProcessError as failed:
        display.error = {"message": str(failed)}
        return EXIT_FAILED
    return process.exit_code if process.exit_code is not None else EXIT_FAILED


def _summary(console: Console, result: dict[str, Any]) -> None:
    size = human_size(float(result.get("bytes") or 0))
    if result.get("kind") == "hub":
        console.print(f"pushed {size} to {result.get('repo')}: {result.get('url')}", markup=False)
        return
    console.print(f"wrote {size} to {result.get('path')}:", markup=False)
    for item in result.get("files") or []:
        name = Path(str(item.get("name"))).name
        console.print(f"  {name}  {human_size(float(item.get('bytes') or 0))}", markup=False)


def _refused(err: Console, refused: ExportRefused) -> int:
    err.print(f"error: {refused.message}", markup=False)
    if refused.hint:
        err.print(f"hint: {refused.hint}", markup=False)
    return EXIT_USER_ERROR
