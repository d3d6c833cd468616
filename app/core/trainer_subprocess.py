"""The one client for trainer verbs that speak JSON lines (DESIGN.md §8).

``TrainerProcess(["doctor", "--config", path, "--json"], python=..., cwd=...)`` starts
``python -m trainer <verb> ...`` with the training Python (``launch_python(python)``: a frozen
app without a training environment raises its LaunchError here, before anything starts) and the
clean environment every local run starts from (app.core.trainer_python.clean_environment), in
a session of its own. A reader thread turns each stdout line into an event (a dict; a line
that is not JSON becomes ``{"event": "log", "line": ...}``) while another keeps the end of
stderr. Events reach the caller either through ``on_event`` (called on the reader thread: a Qt
caller posts them to the GUI thread) or through ``events()``, an iterator with a bounded wait
per event.

The stream always ends with one closing event after the verb's own: ``{"event": "exit",
"code": n}``, preceded, when the process failed without saying why, by
``{"event": "error", "message": <the last stderr lines>, "hint": ...}``, or by
``{"event": "cancelled"}`` after ``cancel()``. So a crash in the trainer is a readable message,
never a hung or dead window. ``send(request)`` writes one JSON line to stdin (``stdin=True``):
a long-lived verb (chat) reads requests and answers with events on the same stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from app.core.trainer_python import clean_environment, launch_python

log = logging.getLogger(__name__)

Event = dict[str, Any]
EventCallback = Callable[[Event], None]
STDERR_LINES = 40  # kept for the error message of a failed verb
DEFAULT_GRACE_S = 3.0
_END = object()


class TrainerProcessError(Exception):
    """The verb could not be started, or ``events()`` waited longer than allowed."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


def _failure_message(stderr: list[str], code: int) -> tuple[str, str]:
    """What a user reads when the verb died without an error event: its own "error:" lines when
    it printed any (the trainer's CLI prefixes expected problems so), else the end of stderr."""
    said = [line[len("error: ") :] for line in stderr if line.startswith("error: ")]
    hints = [line[len("hint: ") :] for line in stderr if line.startswith("hint: ")]
    if said:
        return "\n".join(said[-5:]), (hints[-1] if hints else "")
    tail = "\n".join(line for line in stderr[-8:] if line.strip())
    reason = f"the trainer stopped with exit code {code}"
    if code < 0:
        reason = f"the trainer was killed by signal {-code}"
    return (
        f"{reason}" + (f":\n{tail}" if tail else " and printed nothing"),
        "Check the training Python in Settings (it needs Tunedeck's trainer and its packages).",
    )


class TrainerProcess:
    """One ``python -m trainer <verb>`` process and its JSON-lines stream."""

    def __init__(
        self,
        verb_args: Sequence[str],
        *,
        python: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        stdin: bool = False,
        on_event: EventCallback | None = None,
        trainer_args: Sequence[str] = ("-m", "trainer"),
    ) -> None:
        self.command = [launch_python(python), *trainer_args, *verb_args]
        self.cwd = cwd
        base = clean_environment(env)
        base.update(extra_env or {})
        base["PYTHONUNBUFFERED"] = "1"  # events as they happen, not when a buffer fills
        self.env = base
        self.wants_stdin = stdin
        self.on_event = on_event
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.cancelled = False
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._saw_error = False
        self._threads: list[threading.Thread] = []
        self._stdin_lock = threading.Lock()
        self._done = threading.Event()

    # ------------------------------------------------------------------------------ life

    def start(self) -> TrainerProcess:
        creationflags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows only
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE if self.wants_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
                start_new_session=sys.platform != "win32",
                creationflags=creationflags,
            )
        except OSError as err:
            raise TrainerProcessError(
                f"cannot start the trainer with {self.command[0]}: {err.strerror or err}",
                "Check the training Python in Settings.",
            ) from err
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out_reader = threading.Thread(
            target=self._read_stdout, args=(self.proc.stdout,), daemon=True, name="trainer-out"
        )
        err_reader = threading.Thread(
            target=self._read_stderr, args=(self.proc.stderr,), daemon=True, name="trainer-err"
        )
        self._threads = [err_reader, out_reader]
        err_reader.start()
        out_reader.start()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and not self._done.is_set()

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def send(self, request: Mapping[str, Any]) -> None:
        """One request line on the verb's stdin (a verb started with ``stdin=True``)."""
        if self.proc is None or self.proc.stdin is None:
            raise TrainerProcessError("this trainer process takes no requests (stdin=False)")
        line = json.dumps(dict(request), ensure_ascii=False) + "\n"
        with self._stdin_lock:
            try:
                self.proc.stdin.write(line.encode("utf-8"))
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as err:
                raise TrainerProcessError("the trainer process has ended") from err

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with self._stdin_lock, contextlib.suppress(OSError):
                self.proc.stdin.close()

    def cancel(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        """Stop the verb and everything it started: SIGTERM to its process group, SIGKILL after
        ``grace_s``. Returns once it has ended; the stream then closes with "cancelled"."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.cancelled = True
        self._signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(proc, signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
            proc.wait(timeout=grace_s)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            if sys.platform == "win32":
                proc.terminate() if sig == signal.SIGTERM else proc.kill()
            else:
                os.killpg(proc.pid, sig)  # its own session: the group id is its pid
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout_s: float) -> int:
        """The exit code once the stream has closed; TrainerProcessError after ``timeout_s``."""
        if not self._done.wait(timeout_s):
            raise TrainerProcessError(f"the trainer did not finish within {timeout_s:g} s")
        assert self.exit_code is not None
        return self.exit_code

    # ---------------------------------------------------------------------------- events

    def events(self, idle_timeout_s: float = 60.0) -> Iterator[Event]:
        """Every event until the closing "exit" one (included). TrainerProcessError when no
        event comes for ``idle_timeout_s`` (the process is then cancelled, never left running)."""
        if self.on_event is not None:
            raise TrainerProcessError("events() is for callers that gave no on_event")
        while True:
            try:
                item = self._queue.get(timeout=idle_timeout_s)
            except queue.Empty:
                self.cancel()
                raise TrainerProcessError(
                    f"the trainer sent nothing for {idle_timeout_s:g} s and was stopped"
                ) from None
            if item is _END:
                return
            yield item

    def _deliver(self, event: Event) -> None:
        if self.on_event is None:
            self._queue.put(event)
            return
        try:
            self.on_event(event)
        except Exception:  # a bug in the caller's handler must not kill the reader
            log.exception("trainer event handler failed on %s", event.get("event"))

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict) or "event" not in event:
                event = {"event": "log", "line": text}
            if event.get("event") == "error":
                self._saw_error = True
            self._deliver(event)
        stream.close()
        self._finish()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._stderr.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        stream.close()

    def _finish(self) -> None:
        assert self.proc is not None
        code = self.proc.wait()
        deadline = time.monotonic() + 5.0
        for t in self._threads:  # the stderr reader: its last lines make the message
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        self.exit_code = code
        if self.cancelled:
            self._deliver({"event": "cancelled"})
        elif code != 0 and not self._saw_error:
            message, hint = _failure_message(list(self._stderr), code)
            self._deliver({"event": "error", "message": message, "hint": hint, "code": code})
        self._deliver({"event": "exit", "code": code})
        self.close_stdin()
        self._done.set()
        if self.on_event is None:
            self._queue.put(_END)
