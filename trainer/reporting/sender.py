"""Background delivery of events to a receiver, so that training never waits on the network.

One ``Lane`` per endpoint (metric points, alerts), each with its own thread:

- ``submit`` only appends to a bounded in-memory queue and returns; it never blocks on I/O.
- Batches form by themselves: while a request is under way the queue fills; an idle lane looks
  at its queue every ``linger`` seconds (metrics: a quarter second) instead of being woken for
  every point, so a fast run sends a few requests a second, not one per point.
- The thread takes up to ``max_batch`` queued items, posts them, and on a network error, a
  timeout, a 429 or a 5xx keeps that batch *in flight* and retries it with backoff and jitter
  (never dropping it), so whatever the receiver did not acknowledge is sent again when it comes
  back, in order, before anything newer.
- 401/403 (wrong token or key), 404 (unknown job) and 410 (the job is closed: it ended long ago)
  are logged once, clearly, and the lane stops sending (nothing it sends could be taken);
  training goes on and the events stay in ``events.jsonl``.
- 413 or 422 on a batch splits it in halves until the offending single item is found, which is
  then dropped with one log line (the receiver will never accept it).
- An item that cannot be encoded as strict JSON (a NaN deep inside, an object json does not know)
  is dropped from sending with one log line; the rest of its batch is sent. Any other error while
  sending (a bug in a target, say) costs only the batch at hand, logged with its traceback: the
  lane thread never dies, so later events are still sent.
- Queue full (receiver down for a long time): the oldest queued item is dropped and counted. Every
  item is already in ``events.jsonl``, so once the receiver answers again the lane reads the
  dropped ones back from the log (``recover``) and sends them too: nothing is lost, only late.
- ``close(timeout)`` sends what it can within the bound: no backoff sleeps, and a lane whose
  receiver fails during close gives up at once instead of burning the whole bound.
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainer.reporting.http_target import HttpTarget, Response, encode_json

log = logging.getLogger("trainer.reporting")

Item = tuple[int, dict[str, Any]]  # (seq in events.jsonl, payload)


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": a delay in [d/2, d], d doubling up to ``cap``."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        d = min(self.cap, self.base * (2 ** max(0, failures - 1)))
        jittered = self.rng.uniform(d / 2, d)
        if retry_after is not None:
            return min(self.cap, max(jittered, retry_after))
        return jittered


@dataclass
class LaneStats:
    sent: int = 0  # items the receiver acknowledged
    requests: int = 0
    failures: int = 0  # failed attempts (retried)
    dropped_full: int = 0  # pushed out of a full queue (recovered from the log later)
    recovered: int = 0
    rejected: int = 0  # refused one by one with 413/422; never resent
    unencodable: int = 0  # not strict JSON; dropped from sending (kept in the log)
    errors: int = 0  # batches dropped after an unexpected error while sending
    disabled: str | None = None  # why the lane stopped sending


class Lane:
    """A queue, a thread and a receiver endpoint. See the module docstring for the policy."""

    def __init__(
        self,
        name: str,
        target: HttpTarget,
        make_body: Callable[[list[dict[str, Any]]], Any],
        *,
        max_batch: int = 200,
        max_queue: int = 10_000,
        backoff: Backoff | None = None,
        recover: Callable[[set[int]], list[Item]] | None = None,
        auth_hint: str = "",
        linger: float = 0.0,
        job_id: str = "",
    ) -> None:
        self.name = name
        self.job_id = job_id
        self.stats = LaneStats()
        self._target = target
        self._make_body = make_body
        self._max_batch = max_batch
        self._queue: collections.deque[Item] = collections.deque()
        self._max_queue = max_queue
        self._dropped: set[int] = set()
        self._inflight: list[Item] = []
        self._backoff = backoff or Backoff()
        self._recover = recover
        self._auth_hint = auth_hint
        self._cond = threading.Condition()
        self._linger = linger
        self._closing = False
        self._deadline: float | None = None
        self._consecutive_failures = 0
        self._outage_logged = False
        self._error_traced = False
        self._thread = threading.Thread(target=self._run, name=f"tunedeck-{name}", daemon=True)
        self._thread.start()

    # -- called from the training thread ------------------------------------------------------

    def submit(self, seq: int, payload: dict[str, Any]) -> None:
        """Queue one item. Never blocks on the network, and normally takes no lock at all.

        deque appends and pops are atomic, so the training thread neither waits for the lane
        thread nor wakes it for every point (waking a thread per point cost the training thread
        more than the point itself): a lingering lane looks at its queue on its own timer and
        is only woken when a batch is full. A lane without linger (alerts: rare, urgent) is
        woken for each item."""
        if self.stats.disabled or self._closing:
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            try:
                old_seq, _ = queue.popleft()
            except IndexError:  # the lane thread emptied it meanwhile
                pass
            else:
                self._dropped.add(old_seq)
                self.stats.dropped_full += 1
        queue.append((seq, payload))
        if not self._linger or len(queue) == self._max_batch:
            with self._cond:
                self._cond.notify()

    def pending(self) -> int:
        """Items not yet acknowledged (read without the lock: for polling in a signal handler)."""
        if self.stats.disabled:
            return 0
        return len(self._queue) + len(self._inflight) + len(self._dropped)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is acknowledged (True) or ``timeout`` passes."""
        end = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self.pending() and time.monotonic() < end:
                self._cond.wait(min(0.05, max(0.0, end - time.monotonic())))
        return self.pending() == 0

    def close(self, timeout: float) -> bool:
        """Send what can be sent within ``timeout`` seconds, then stop the thread."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + 1.0)
        self._target.close()
        left = self.pending()
        if left and not self.stats.disabled:
            log.warning(
                "%s: %d event(s) were not delivered before exit; they are in events.jsonl",
                self.name,
                left,
            )
        return left == 0

    def begin_emergency_close(self) -> None:
        """From a signal handler: switch to close mode without risking a deadlock on the lock."""
        if self._cond.acquire(timeout=0.2):
            try:
                self._closing = True
                self._deadline = time.monotonic() + 1.0
                self._cond.notify_all()
            finally:
                self._cond.release()

    # -- the lane's thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if not self._next_batch():
                    break
                outcome = self._attempt()
                if outcome is not None and not self._wait_backoff(outcome):
                    break
            except Exception as err:
                # A bug may cost the batch at hand, never the rest of the run's reporting.
                if not self._survive(err):
                    break
        with self._cond:
            self._cond.notify_all()

    def _survive(self, err: Exception) -> bool:
        """Drop the in-flight batch after an unexpected error; False when the lane should stop.

        The first such error is logged with its traceback, later ones in one line each. A short
        pause keeps an error that repeats for every batch from spinning the thread."""
        with self._cond:
            batch, self._inflight = self._inflight, []
            self.stats.errors += 1
            self._cond.notify_all()
        seqs = f"events {batch[0][0]}-{batch[-1][0]}" if batch else "no event"
        log.error(
            "%s: sending failed unexpectedly (%r); %s dropped from sending (kept in "
            "events.jsonl), later events are still sent",
            self.name,
            err,
            seqs,
            exc_info=not self._error_traced,
        )
        self._error_traced = True
        with self._cond:
            if self._closing:
                return not (self._deadline is not None and time.monotonic() >= self._deadline)
            self._cond.wait(0.2)
        return True

    def _next_batch(self) -> bool:
        """Fill ``_inflight``; False when the lane should stop."""
        with self._cond:
            while True:
                if self.stats.disabled:
                    return False
                if (
                    self._closing
                    and self._deadline is not None
                    and time.monotonic() >= self._deadline
                ):
                    return False
                if self._inflight:
                    return True
                if self._queue:
                    self._inflight = self._take(self._max_batch)
                    if self._inflight:
                        return True
                    continue
                if self._dropped and self._recover is not None:
                    wanted = set(sorted(self._dropped)[: self._max_batch])
                    self._cond.release()
                    try:
                        items = self._recover(wanted)
                    except Exception as err:  # an unreadable log must not stop the lane
                        log.error(
                            "%s: could not read %d dropped event(s) back from the event log "
                            "(%r); they stay in events.jsonl only",
                            self.name,
                            len(wanted),
                            err,
                        )
                        items = []
                    finally:
                        self._cond.acquire()
                    self._dropped -= wanted
                    self.stats.recovered += len(items)
                    self._inflight = sorted(items, key=lambda it: it[0])
                    if self._inflight:
                        return True
                    continue
                if self._closing:
                    return False
                self._cond.notify_all()  # wake flush() waiters: nothing pending
                self._cond.wait(self._linger or 0.5)

    def _take(self, n: int) -> list[Item]:
        batch: list[Item] = []
        try:
            while len(batch) < n:
                batch.append(self._queue.popleft())
        except IndexError:  # empty (submit may pop the oldest item when the queue is full)
            pass
        return batch

    def _attempt(self) -> Response | Exception | None:
        """Post the in-flight batch. None when it is settled, else what to back off on."""
        body = self._encode()
        if body is None:
            return None  # nothing in the batch could be encoded
        batch = self._inflight
        timeout = self._target.timeout
        if self._closing and self._deadline is not None:
            timeout = max(0.1, min(timeout, self._deadline - time.monotonic()))
        self.stats.requests += 1
        try:
            resp = self._target.post_body(body, timeout=timeout)
        except (OSError, http.client.HTTPException) as err:
            return self._failed(err)
        if 200 <= resp.status < 300:
            with self._cond:
                self.stats.sent += len(batch)
                self._inflight = []
                self._cond.notify_all()
            if self._outage_logged:
                log.warning("%s: receiver at %s answers again", self.name, self._target.url)
                self._outage_logged = False
            self._consecutive_failures = 0
            return None
        if resp.status in (401, 403, 404, 410):
            self._disable(resp)
            return None
        if resp.status in (400, 413, 422):
            self._split_or_reject(resp)
            return None
        return self._failed(resp)

    def _encode(self) -> bytes | None:
        """The in-flight batch as a strict-JSON body; items that cannot be encoded are dropped
        from it first, each with a log line (None when none is left)."""
        try:
            return encode_json(self._make_body([p for _, p in self._inflight]))
        except (TypeError, ValueError, RecursionError):
            pass
        kept: list[Item] = []
        for seq, payload in self._inflight:
            try:
                encode_json(payload)
            except (TypeError, ValueError, RecursionError) as err:
                self.stats.unencodable += 1
                log.error(
                    "%s: event %d cannot be sent as JSON (%s); it is dropped from sending but "
                    "kept in events.jsonl as written",
                    self.name,
                    seq,
                    err,
                )
            else:
                kept.append((seq, payload))
        with self._cond:
            self._inflight = kept
            if not kept:
                self._cond.notify_all()
        if not kept:
            return None
        return encode_json(self._make_body([p for _, p in kept]))

    def _failed(self, why: Response | Exception) -> Response | Exception:
        self.stats.failures += 1
        self._consecutive_failures += 1
        if not self._outage_logged:
            detail = f"HTTP {why.status}" if isinstance(why, Response) else repr(why)
            log.warning(
                "%s: receiver at %s not reachable (%s); retrying with backoff, events are kept "
                "in events.jsonl",
                self.name,
                self._target.url,
                detail,
            )
            self._outage_logged = True
        return why

    def _wait_backoff(self, why: Response | Exception) -> bool:
        """Sleep before the retry; False when the lane should give up (closing)."""
        with self._cond:
            if self._closing:
                return False  # one failure during close: the rest stays in the log
            retry_after = why.retry_after if isinstance(why, Response) else None
            delay = self._backoff.delay(self._consecutive_failures, retry_after)
            end = time.monotonic() + delay
            while not self._closing and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            return True

    def _disable(self, resp: Response) -> None:
        url = self._target.url
        if resp.status == 410 and _error_code(resp) == "job_closed":
            why = (
                f"the receiver says job {self.job_id} is closed; it takes no more metrics "
                f"(HTTP 410 from {url})."
            )
        elif resp.status == 410:
            why = f"the receiver at {url} answers that this endpoint is gone (HTTP 410)."
        elif resp.status == 404:
            why = f"the receiver at {url} does not know this job (HTTP 404). Check JOB_ID."
        else:
            why = f"the receiver at {url} rejected the credentials (HTTP {resp.status})."
            if self._auth_hint:
                why += f" {self._auth_hint}"
        log.error(
            "%s: %s Nothing more is sent to it in this run; training goes on and every event "
            "stays in events.jsonl.",
            self.name,
            why,
        )
        with self._cond:
            self.stats.disabled = f"HTTP {resp.status}"
            self._queue.clear()
            self._inflight = []
            self._dropped.clear()
            self._cond.notify_all()

    def _split_or_reject(self, resp: Response) -> None:
        with self._cond:
            batch = self._inflight
            if len(batch) > 1:
                half = len(batch) // 2
                # the second half goes back to the front of the queue, in order
                self._queue.extendleft(reversed(batch[half:]))
                self._inflight = batch[:half]
                return
            self._inflight = []
            self.stats.rejected += 1
        log.error(
            "%s: receiver refused event %d with HTTP %d (%s); it is dropped from sending but "
            "kept in events.jsonl",
            self.name,
            batch[0][0],
            resp.status,
            resp.body[:300].decode("utf-8", "replace"),
        )


def _error_code(resp: Response) -> str | None:
    """The ``error`` member of a JSON error answer, if there is one."""
    try:
        body = json.loads(resp.body)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None
