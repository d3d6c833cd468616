"""Every example's token counts and cut, a chunk of examples at a time, on both cores.

Chat-template rendering is Python (one core at a time under the GIL) and the tokenizer is Rust.
Where the platform can ``fork`` and the process has no other Python thread, the chunks go to
forked worker processes, one a core (two at least), each rendering and tokenising its own chunks
(the tokenizer single-threaded in each, so they never oversubscribe the cores); only each chunk's
small statistics come back.
Elsewhere two threads share the work (one renders while the other's tokenisation runs without the
GIL). The statistics are the same either way, in chunk order.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from trainer.doctor.marks import EncodeContext, batch_encode, cut, trl_encode

CHUNK = 2000  # examples tokenised per batch (and per progress event)
MAX_WORKERS = 8  # each holds a chunk's texts and encodings: memory grows with the count


def _workers() -> int:
    """One worker a core (each tokenises single-threaded), at least two, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 2
    return min(MAX_WORKERS, max(2, cores))


Example = tuple[int, dict[str, Any]]  # (line, prepared example)


@dataclass
class ChunkStats:
    size: int  # examples in the chunk
    lengths: list[int] = field(default_factory=list)  # one per sequence
    truncated_lines: list[int] = field(default_factory=list)  # one per truncated sequence
    dropped_lines: list[int] = field(default_factory=list)
    first_truncated: Example | None = None


def chunk_stats(chunk: list[Example], ctx: EncodeContext, *, batched: bool) -> ChunkStats:
    """The statistics of one chunk, from the batched encoding or from TRL's own preparation."""
    encode = batch_encode if batched else trl_encode
    out = ChunkStats(len(chunk))
    for (line, ex), seqs in zip(chunk, encode([ex for _, ex in chunk], ctx), strict=True):
        dropped = False
        for enc in seqs:
            c = cut(enc, ctx)
            out.lengths.append(len(enc.ids))
            dropped = dropped or c.dropped
            if c.truncated(len(enc.ids)):
                out.truncated_lines.append(line)
                if out.first_truncated is None:
                    out.first_truncated = (line, ex)
        if dropped:
            out.dropped_lines.append(line)
    return out


# what the forked workers read: set before the fork, inherited, never pickled
_SHARED: tuple[list[Example], EncodeContext, bool] | None = None


def _worker_stats(start: int) -> ChunkStats:
    assert _SHARED is not None
    examples, ctx, batched = _SHARED
    return chunk_stats(examples[start : start + CHUNK], ctx, batched=batched)


def can_fork() -> bool:
    """A fork copies no lock another thread holds: only with no other Python thread."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def all_chunk_stats(
    examples: list[Example], ctx: EncodeContext, *, batched: bool
) -> Iterable[ChunkStats]:
    """``chunk_stats`` of every CHUNK of ``examples``, in order. The workers start now (a fork
    must come before anything starts a thread), the results are read as the iterator is."""
    global _SHARED
    starts = range(0, len(examples), CHUNK)
    if len(starts) < 2 or (not batched and not can_fork()):  # TRL's preparation: one at a time
        return (chunk_stats(examples[s : s + CHUNK], ctx, batched=batched) for s in starts)
    if can_fork():
        _SHARED = (examples, ctx, batched)
        # one tokenizer thread per worker, and no "forked after parallelism" warning
        before = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        gc.freeze()  # the children's collector leaves the inherited objects' pages unwritten
        try:
            pool = multiprocessing.get_context("fork").Pool(_workers())
        finally:
            gc.unfreeze()
            if before is None:
                os.environ.pop("TOKENIZERS_PARALLELISM", None)
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = before
            _SHARED = None  # the workers have their copy
        return _Closing(pool, pool.imap(_worker_stats, starts))
    threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="doctor-encode")
    results = threads.map(
        lambda start: chunk_stats(examples[start : start + CHUNK], ctx, batched=batched), starts
    )
    return _Closing(threads, results)


class _Closing:
    """``results`` read in order, then the pool or executor shut down; ``close()`` shuts it down
    at once (results not read are thrown away)."""

    def __init__(self, owner: Any, results: Iterator[ChunkStats]) -> None:
        self._owner, self._results = owner, results

    def __iter__(self) -> Iterator[ChunkStats]:
        try:
            yield from self._results
        finally:
            self.close()

    def close(self) -> None:
        if self._owner is None:
            return
        owner, self._owner = self._owner, None
        if isinstance(owner, ThreadPoolExecutor):
            owner.shutdown(wait=True, cancel_futures=True)
        else:
            owner.terminate()
            owner.join()
