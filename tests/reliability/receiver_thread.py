"""The app's real receiver on 127.0.0.1, on an asyncio loop in a thread of its own.

For tests that drive it synchronously (hypothesis, raw sockets): ``with ReceiverThread(store,
api_key=...) as live:`` gives ``live.url``, ``live.port`` and ``live.server``. The store is the
caller's (a real SQLite file); ``StoreReader(path)`` reads back what was stored, as SQLite holds
it, through a connection of its own.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from app.core.ingest import Ingestor
from app.core.receiver import READ_TIMEOUT_S, ReceiverServer
from app.core.store import Store


class ReceiverThread:
    def __init__(
        self, store: Store, *, api_key: str, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        self.store = store
        self.server = ReceiverServer(
            Ingestor(store), store, api_key=api_key, read_timeout_s=read_timeout_s
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def __enter__(self) -> ReceiverThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def strict_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity (JSON has neither)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class StoreReader:
    """Reads the store's file through a connection of its own (what a refused request must
    not have changed, and what a stored value looks like as SQLite holds it)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)

    def close(self) -> None:
        self._db.close()

    def counts(self) -> tuple[int, int]:
        """(metric rows, alert rows)."""
        row = self._db.execute(
            "SELECT (SELECT count(*) FROM metrics), (SELECT count(*) FROM alerts)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def jobs(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._db.execute("SELECT * FROM jobs ORDER BY id")]

    def json_texts(self) -> list[str]:
        """Every stored JSON text: metric extras and alert payloads."""
        rows = self._db.execute(
            "SELECT extras FROM metrics WHERE extras IS NOT NULL "
            "UNION ALL SELECT payload FROM alerts"
        ).fetchall()
        return [r[0] for r in rows]
