"""Run the doctor's row findings beside its tokenisation.

The findings are pure Python; the tokenisation is the Rust tokenizer plus chat-template rendering
(Python). In one process the two share the GIL, so where the platform can ``fork`` and the process
has no other thread yet (a fork then copies no lock held by another thread), the findings run in a
forked child on the other core and send their result back; elsewhere (Windows, macOS' default,
a process with threads) in a thread. Either way ``result()`` returns what the function returned or
raises what it raised, in the caller's thread. Light module.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Beside(Generic[T]):
    """``func()`` started now; ``result()`` waits for it. ``seconds``: how long it ran."""

    def __init__(self, func: Callable[[], T], *, name: str = "doctor-findings") -> None:
        self._func = func
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = False
        self.seconds = 0.0
        self.in_process = "fork" in multiprocessing.get_all_start_methods() and (
            threading.active_count() == 1
        )
        self._conn: Connection | None = None
        self._proc: Any = None
        self._thread: threading.Thread | None = None
        if self.in_process:
            ctx = multiprocessing.get_context("fork")
            receiver, sender = ctx.Pipe(duplex=False)
            self._conn = receiver
            self._proc = ctx.Process(target=self._child, args=(sender,), name=name, daemon=True)
            gc.freeze()  # the child's collector leaves the inherited objects' pages unwritten
            try:
                self._proc.start()
            finally:
                gc.unfreeze()
            sender.close()
        else:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _timed(self) -> tuple[Any, BaseException | None, float]:
        started = time.perf_counter()
        try:
            return self._func(), None, time.perf_counter() - started
        except BaseException as err:  # handed to the caller by result()
            return None, err, time.perf_counter() - started

    def _run(self) -> None:
        self._value, self._error, self.seconds = self._timed()

    def _child(self, sender: Connection) -> None:
        value, error, seconds = self._timed()
        try:
            try:
                sender.send((value, error, seconds))
            except (pickle.PicklingError, TypeError, AttributeError):
                # an error that does not pickle: the parent runs the function again to raise it
                sender.send((None, None, -1.0))
        except OSError:  # the parent is gone (stopped): nobody to tell
            pass
        sender.close()

    def result(self) -> T:
        if not self._done:
            self._done = True
            if self._thread is not None:
                self._thread.join()
            else:
                assert self._conn is not None
                try:
                    self._value, self._error, self.seconds = self._conn.recv()
                except EOFError:  # the child died (killed, out of memory): do it here
                    self.seconds = -1.0
                self._conn.close()
                self._proc.join()
                if self.seconds < 0:
                    self._run()
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value
