"""``tunedeck chat JOB [--checkpoint N] [--compare base|JOB[:N]]``: talk to a finished job's
model in a terminal, tokens streaming as they are generated.

The same chat processes as the Try tab (app.core.chat_session): the model loads once in the
trainer's environment, each line typed is a user turn (the conversation is kept), and the answer
streams in. With ``--compare`` a second model answers every turn too: the first answer streams,
the second is shown after it (both are generated at once). ``/reset`` starts a new conversation;
the end of input (Ctrl-D) or ``/quit`` ends the session and its processes, exit status 0.
Ctrl-C stops the answer being generated; a second one ends the session.
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from app.core.chat_session import (
    ChatSession,
    ChatTarget,
    ChatUnavailable,
    GenerationSettings,
    job_targets,
)
from app.core.launcher import LaunchError
from app.core.store import Store
from app.core.trainer_python import launch_python
from app.core.trainer_subprocess import TrainerProcessError

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR = 0, 1, 2
LOAD_TIMEOUT_S = 900.0  # a large model from a slow disk
ANSWER_IDLE_S = 300.0  # no token for this long: the process is stuck


def add_commands(sub: Any) -> dict[str, Any]:
    p = sub.add_parser("chat", help="talk to a finished job's model, streaming")
    p.add_argument("job", help="job id (or its first characters)")
    p.add_argument("--checkpoint", type=int, default=None, help="use checkpoint-N of the job")
    p.add_argument(
        "--compare",
        metavar="base|JOB[:N]",
        help="a second model answering too: the job's base model, or another job (checkpoint N)",
    )
    p.add_argument("--python", default=None, help="Python that runs the model (the trainer's)")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--temperature", type=float, default=0.7, help="0 is greedy")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=None, help="repeatable sampled answers")
    p.add_argument(
        "--ignore-eos",
        action="store_true",
        help="keep generating up to --max-new-tokens even past end-of-text",
    )
    return {"chat": cmd_chat}


class ChatUsageError(Exception):
    pass


def _pick(targets: list[ChatTarget], checkpoint: int | None, job_id: str) -> ChatTarget:
    for target in targets:
        if not target.base and target.checkpoint == checkpoint:
            return target
    offered = ", ".join(str(t.checkpoint) for t in targets if t.checkpoint is not None)
    what = f"checkpoint {checkpoint}" if checkpoint is not None else "a final model"
    raise ChatUsageError(
        f"job {job_id} has no {what}"
        + (f"; its checkpoints: {offered} (--checkpoint N)" if offered else "")
    )


def resolve_targets(store: Store, args: argparse.Namespace) -> list[ChatTarget]:
    """The model to chat with and, with --compare, the one to compare it with."""
    job = store.find_job(args.job)
    targets = job_targets(job, Path.cwd())
    chosen = [_pick(targets, args.checkpoint, job.id)]
    if args.compare:
        if args.compare == "base":
            chosen.append(targets[-1])
        else:
            other_id, _, step = args.compare.partition(":")
            other = store.find_job(other_id)
            if step and not step.isdigit():
                raise ChatUsageError(f"--compare {args.compare}: N of JOB:N is a checkpoint number")
            chosen.append(
                _pick(job_targets(other, Path.cwd()), int(step) if step else None, other.id)
            )
    return chosen


class TerminalChat:
    """The sessions, their events in one queue, and what the terminal shows."""

    def __init__(self, targets: list[ChatTarget], python: str | None, out: IO[str]) -> None:
        self.out = out
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.sessions = [ChatSession(t, python=python, on_event=self._queue_event) for t in targets]
        self.histories: list[list[dict[str, str]]] = [[] for _ in targets]

    def _queue_event(self, session: ChatSession, event: dict[str, Any]) -> None:
        self.events.put((session.target.key, event))

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _next(self, timeout_s: float) -> tuple[str, dict[str, Any]]:
        try:
            return self.events.get(timeout=timeout_s)
        except queue.Empty:
            raise ChatUsageError(f"the model sent nothing for {timeout_s:g} s") from None

    def start(self) -> None:
        for session in self.sessions:
            session.start()
            self.write(f"loading {session.target.label}…\n")
        waiting = {s.target.key for s in self.sessions}
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while waiting:
            key, event = self._next(max(0.1, deadline - time.monotonic()))
            if event["event"] == "ready":
                waiting.discard(key)
                note = f" ({event['note']})" if event.get("note") else ""
                self.write(
                    f"ready: {event['model']} on {event['device']}, {event['dtype']}{note}\n"
                )
            elif event["event"] == "error":
                hint = f"\nhint: {event['hint']}" if event.get("hint") else ""
                raise ChatUsageError(f"{event.get('message')}{hint}")
            elif event["event"] == "exit":
                raise ChatUsageError(f"the chat process ended (exit code {event.get('code')})")

    def ask(self, text: str, settings: GenerationSettings, **extra: Any) -> None:
        """One user turn to every model; the first answer streams, the others follow."""
        ids: dict[str, int] = {}
        for n, (session, history) in enumerate(zip(self.sessions, self.histories, strict=True)):
            history.append({"role": "user", "content": text})
            ids[session.generate(history, settings, **extra)] = n
        shown = 0  # the model whose answer is on screen now
        pending: dict[int, list[str]] = {n: [] for n in range(len(self.sessions))}
        finished: dict[int, str | None] = {}
        self.write(f"{self.sessions[0].target.short_label}> ")
        while len(finished) < len(self.sessions):
            try:
                _key, event = self._next(ANSWER_IDLE_S)
            except KeyboardInterrupt:
                for session in self.sessions:
                    session.stop()
                continue
            n = ids.get(str(event.get("id", "")), -1)
            kind = event["event"]
            if kind in ("error", "exit"):
                raise ChatUsageError(str(event.get("message") or "the chat process ended"))
            if n < 0:
                continue
            if kind == "token":
                pending[n].append(str(event["text"]))
            elif kind == "done":
                finished[n] = str(event["text"])
                self.histories[n].append({"role": "assistant", "content": finished[n] or ""})
                if event.get("reason") == "stopped":
                    pending[n].append(" [stopped]")
            elif kind == "failed":
                finished[n] = None
                self.histories[n].pop()
                pending[n].append(f"[{event.get('message')}]")
            while shown < len(self.sessions):  # print what is ready, in order
                self.write("".join(pending[shown]))
                pending[shown].clear()
                if shown not in finished:
                    break
                shown += 1
                self.write("\n")
                if shown < len(self.sessions):
                    self.write(f"{self.sessions[shown].target.short_label}> ")

    def reset(self) -> None:
        self.histories = [[] for _ in self.sessions]

    def close(self) -> None:
        for session in self.sessions:
            session.close()


def cmd_chat(args: argparse.Namespace, console: Console) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    settings = GenerationSettings(
        system=args.system,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    try:
        with Store() as store:
            targets = resolve_targets(store, args)
    except (ChatUnavailable, ChatUsageError) as e:
        err.print(f"error: {e}", markup=False)
        return EXIT_USER_ERROR
    try:
        python = launch_python(args.python)
    except LaunchError as e:
        err.print(f"error: {e}\nhint: {e.hint}", markup=False)
        return EXIT_USER_ERROR
    chat = TerminalChat(targets, python, sys.stdout)
    interactive = sys.stdin.isatty()
    extra = {"min_new_tokens": args.max_new_tokens} if args.ignore_eos else {}
    try:
        chat.start()
        if interactive:
            chat.write("Type a message; /reset starts over, /quit or Ctrl-D ends.\n")
        while True:
            if interactive:
                chat.write("you> ")
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if text == "/quit":
                break
            if text == "/reset":
                chat.reset()
                continue
            if text:
                chat.ask(text, settings, **extra)
    except (ChatUsageError, TrainerProcessError) as e:
        err.print(f"error: {e}", markup=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        chat.write("\n")
    finally:
        chat.close()
    return EXIT_OK
