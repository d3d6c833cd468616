"""``python -m trainer chat``: load a job's model once, then answer requests from stdin.

    python -m trainer chat --config C.json [--run-dir DIR] [--checkpoint N | --base]
        [--device auto|cpu|cuda] [--json]

Requests and events are JSON lines (trainer/chat/protocol.py). A reader thread takes stdin as it
comes, so that ``stop`` reaches the generation in progress: a stop ends every generation
requested before it (a stop that arrives before its generation started still counts), never a
later one. ``quit`` stops the generation in progress and ends the verb at once; the end of
stdin ends it once the requests already read are answered (a script piping requests in gets
every answer). Either way the exit status is 0. Library chatter on stdout is sent to stderr:
stdout carries events only.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from trainer.chat import ChatError
from trainer.chat.protocol import OPS, parse_generate, parse_rows
from trainer.config import RunConfig, load_config
from trainer.jsonl import EventWriter

EXIT_OK, EXIT_USER_ERROR = 0, 2
_QUIT = object()


def add_chat_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="the job's run config JSON")
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="the job's output folder (default: output.output_dir of the config)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=int, default=None, help="chat with checkpoint-N")
    which.add_argument("--base", action="store_true", help="the base model, without the training")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--json", action="store_true", help="JSON lines (the only output there is)")


class Requests:
    """stdin, read on a thread: requests queue up in order; stops are counted at once."""

    def __init__(self, stream: IO[str], emit: EventWriter) -> None:
        self.stream = stream
        self.emit = emit
        self.queue: queue.Queue[Any] = queue.Queue()
        self.received = 0  # generate requests read so far
        self.stopped_upto = 0  # generations numbered up to this are to stop
        self.quitting = False
        self.thread = threading.Thread(target=self._read, daemon=True, name="chat-stdin")

    def start(self) -> Requests:
        self.thread.start()
        return self

    def should_stop(self, number: int) -> bool:
        return self.stopped_upto >= number

    def _read(self) -> None:
        for line in self.stream:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                self.emit("failed", id="", message=f"not JSON: {line.strip()[:80]!r}", hint="")
                continue
            op = data.get("op") if isinstance(data, dict) else None
            if op == "stop":
                self.stopped_upto = self.received
            elif op == "quit":
                self.quitting = True
                self.stopped_upto = self.received
                break
            elif op in OPS:
                if op == "generate":
                    self.received += 1
                    data = {**data, "_number": self.received}
                self.queue.put(data)
            else:
                self.emit(
                    "failed",
                    id=str(data.get("id", "")) if isinstance(data, dict) else "",
                    message=f"op: one of {', '.join(OPS)} (got {op!r})",
                    hint="",
                )
        self.queue.put(_QUIT)


def _serve(cfg: RunConfig, ns: argparse.Namespace, emit: EventWriter, requests: Requests) -> None:
    from trainer.chat.generation import has_template
    from trainer.chat.loading import choose_model, load_model, load_tokenizer_for, place
    from trainer.modeling import set_torch_threads

    base_dir = Path.cwd()
    run_dir = ns.run_dir or cfg.resolved_output_dir(base_dir)
    choice = choose_model(
        cfg, run_dir, checkpoint=ns.checkpoint, base_only=ns.base, base_dir=base_dir
    )
    emit("loading", message=f"loading {choice.label}")
    began = time.monotonic()
    set_torch_threads(cfg)
    placement = place(choice, cfg, ns.device)
    tokenizer = load_tokenizer_for(choice, cfg)
    model = load_model(choice, cfg, placement)
    emit(
        "ready",
        model=choice.label,
        adapter=choice.is_adapter,
        device=placement.device,
        dtype=placement.dtype,
        quantized=placement.quantized,
        template=has_template(tokenizer),
        note=placement.note,
        seconds=round(time.monotonic() - began, 3),
    )
    while True:
        data = requests.queue.get()
        if data is _QUIT or requests.quitting:
            return
        _answer(data, cfg, base_dir, model, tokenizer, placement.device, emit, requests)


def _answer(
    data: dict[str, Any],
    cfg: RunConfig,
    base_dir: Path,
    model: Any,
    tokenizer: Any,
    device: str,
    emit: EventWriter,
    requests: Requests,
) -> None:
    """One request: its events, or a ``failed`` one (the model stays loaded either way)."""
    from trainer.chat.generation import generate
    from trainer.chat.rows import run_rows

    request_id = str(data.get("id", ""))
    try:
        if data["op"] == "rows":
            rows_request = parse_rows(data)
            rows, total, note = run_rows(cfg, rows_request.split, rows_request.limit, base_dir)
            emit("rows", id=request_id, split=rows_request.split, rows=rows, total=total, note=note)
            return
        request = parse_generate(data)
        number = int(data["_number"])
        answer = generate(
            model,
            tokenizer,
            request,
            device=device,
            should_stop=lambda: requests.should_stop(number),
            emit=lambda text: emit("token", id=request_id, text=text),
            started=lambda n: emit("start", id=request_id, prompt_tokens=n),
        )
        emit(
            "done",
            id=request_id,
            text=answer.text,
            tokens=answer.tokens,
            prompt_tokens=answer.prompt_tokens,
            seconds=round(answer.seconds, 3),
            reason=answer.reason,
        )
    except ChatError as err:
        emit("failed", id=request_id, message=err.message, hint=err.hint)
    except Exception as err:
        import torch

        hint = ""
        if isinstance(err, torch.cuda.OutOfMemoryError | MemoryError):
            hint = "ask for fewer new tokens, shorten the conversation, or close other programs"
        elif isinstance(err, ValueError | TypeError) and "template" in str(err).lower():
            hint = "the model's chat template refused these turns (some take no system prompt)"
        emit("failed", id=request_id, message=f"{type(err).__name__}: {err}", hint=hint)
        if not hint:  # not a known limit: a bug, with its traceback in the log
            import traceback

            traceback.print_exc()


def cmd_chat(ns: argparse.Namespace) -> int:
    cfg = load_config(ns.config)
    emit = EventWriter(sys.stdout)
    sys.stdout = sys.stderr  # stdout is for events only
    requests = Requests(sys.stdin, emit).start()
    try:
        _serve(cfg, ns, emit, requests)
    except ChatError as err:
        emit("error", message=err.message, hint=err.hint)
        return EXIT_USER_ERROR
    finally:
        sys.stdout = emit.stream
    return EXIT_OK
