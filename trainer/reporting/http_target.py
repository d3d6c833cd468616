"""One HTTP endpoint the trainer posts JSON to, over a kept-alive connection.

Standard library only: the trainer runs on cloud pods that have torch and little else.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    retry_after: float | None = None


def encode_json(payload: Any) -> bytes:
    """Strict JSON (no NaN or Infinity: the receiver refuses them), compact, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")


def endpoint_url(url: str, default_path: str) -> str:
    """``url`` as given when it names a path, else its origin plus ``default_path``.

    The contract's METRICS_API_URL / ALERT_API_URL are full endpoint URLs in the system Tunedeck
    replaces; a bare origin (``http://127.0.0.1:8765``) is accepted too.
    """
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}{default_path}"
    return url


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class HttpTarget:
    """POSTs JSON to one URL. Not thread-safe: each sender lane owns its own target."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "tunedeck-trainer",
            **headers,
        }
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        elif self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        self._conn.timeout = timeout
        return self._conn

    def post_json(self, payload: Any, timeout: float | None = None) -> Response:
        """POST ``payload`` as strict JSON (ValueError / TypeError when it is not encodable)."""
        return self.post_body(encode_json(payload), timeout)

    def post_body(self, body: bytes, timeout: float | None = None) -> Response:
        """POST an encoded JSON body; raises OSError / http.client.HTTPException when nothing
        came back.

        A kept-alive connection the receiver has meanwhile closed (it restarted, or dropped an
        idle connection) fails at the first write or read: that one request is made again at
        once on a fresh connection, rather than counted as an outage. Both endpoints take a
        repeat without harm (a step is stored once, the same alert once)."""
        timeout = self.timeout if timeout is None else timeout
        reused = self._conn is not None
        try:
            return self._send(body, timeout)
        except ConnectionError:  # broken pipe, reset, closed without an answer
            if not reused:
                raise
        return self._send(body, timeout)

    def _send(self, body: bytes, timeout: float) -> Response:
        conn = self._connection(timeout)
        try:
            conn.request("POST", self._path, body=body, headers=self._headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        return Response(resp.status, data, _retry_after(resp.getheader("Retry-After")))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff
