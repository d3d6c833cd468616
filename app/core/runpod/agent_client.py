"""The app's side of the pod agent (``pod_agent.py``), spoken through RunPod's HTTPS proxy.

Every call is one short request: the proxy cuts any request at about 100 s, so uploads and
downloads move in chunks (8 MiB by default) that each cross well under that, resume from what the
other side already holds, and are checked with sha256 at the end, both ways.

Errors: ``AgentUnreachable`` for anything the network or the proxy did (connection refused,
timeouts, a cut mid-body, 502/503/504 from the proxy while the pod starts or moves); the caller
retries it later, and an upload or download called again resumes where it stopped.
``AgentError`` when the agent answered and refused (bad token, checksum mismatch, a bad request).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_PROXY_TEMPLATE = "https://{pod_id}-{port}.proxy.runpod.net"
DEFAULT_CHUNK_BYTES = 8 << 20
PROXY_UNAVAILABLE = frozenset({502, 503, 504})

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def proxy_url(pod_id: str, port: int, template: str = DEFAULT_PROXY_TEMPLATE) -> str:
    """The URL at which RunPod's proxy serves ``port`` of pod ``pod_id``."""
    return template.format(pod_id=pod_id, port=port).rstrip("/")


class AgentUnreachable(Exception):
    """The agent could not be reached (network, proxy 502/503/504, a cut): try again later."""


class AgentError(Exception):
    """The agent answered with a refusal; ``status`` and ``error`` say which."""

    def __init__(self, message: str, *, status: int, error: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.body = status, error, body


@dataclass(frozen=True)
class AgentHealth:
    phase: str  # waiting | installing | training | finished | failed
    exit_code: int | None
    trainer_pid: int | None
    agent_version: str
    last_seq: int
    since_contact_s: float
    cancelled: bool
    error: str
    collected: bool


@dataclass(frozen=True)
class EventsPage:
    events: list[dict[str, Any]]
    last_seq: int  # the highest seq in the pod's log (more remain when above the last returned)
    phase: str
    exit_code: int | None

    @property
    def next_after(self) -> int | None:
        """The ``after`` for the next page, None when this page was empty."""
        return int(self.events[-1]["seq"]) if self.events else None


@dataclass(frozen=True)
class LogChunk:
    text: str
    next: int  # the ``after`` for the next call
    size: int


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the run's output folder, with "/"
    size: int
    sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# An upload retried after a cut would hash a multi-GB dataset again: remember by size and mtime.
_upload_digests: dict[tuple[str, int, int], str] = {}


def _upload_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _upload_digests:
        _upload_digests[key] = sha256_file(path)
    return _upload_digests[key]


class AgentClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.chunk_bytes = chunk_bytes
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
            timeout=timeout_s,
        )

    def __repr__(self) -> str:  # never the token
        return f"AgentClient({self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing ------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise AgentUnreachable(
                f"the pod agent at {self.base_url} is unreachable ({type(err).__name__})"
            ) from err
        if response.status_code in PROXY_UNAVAILABLE:
            raise AgentUnreachable(
                f"the pod agent at {self.base_url} is unreachable "
                f"(HTTP {response.status_code} from the proxy)"
            )
        if response.status_code >= 400:
            raise _agent_error(method, path, response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as err:  # a proxy page instead of the agent's JSON
            raise AgentUnreachable(f"{method} {path}: the answer was not the agent's JSON") from err

    # -- the calls -----------------------------------------------------------------------------

    async def health(self) -> AgentHealth:
        body = await self._json("GET", "/health")
        return AgentHealth(
            phase=body["phase"],
            exit_code=body.get("exit_code"),
            trainer_pid=body.get("trainer_pid"),
            agent_version=str(body.get("agent_version", "")),
            last_seq=int(body.get("last_seq", 0)),
            since_contact_s=float(body.get("since_contact_s", 0.0)),
            cancelled=bool(body.get("cancelled", False)),
            error=str(body.get("error") or ""),
            collected=bool(body.get("collected", False)),
        )

    async def upload(self, name: str, path: Path, progress: Progress | None = None) -> str:
        """Send ``path`` as ``name``, resuming from what the agent holds; returns its sha256.

        A checksum mismatch at the end (the agent held a stale start of another file under this
        name) makes the agent drop its copy; the file is then sent once more from the start."""
        path = Path(path)
        digest = await asyncio.to_thread(_upload_digest, path)
        state = await self._json("GET", f"/files/{quote(name)}")
        if state.get("sha256") == digest:
            return digest  # sent and verified before a cut hid the answer
        for attempt in (1, 2):
            start = int(state.get("size", 0)) if attempt == 1 else 0
            await self._send_chunks(name, path, start, progress)
            try:
                await self._json(
                    "POST",
                    f"/files/{quote(name)}/done",
                    json={"sha256": digest, "size": path.stat().st_size},
                )
                return digest
            except AgentError as err:
                if err.error != "checksum_mismatch" or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _send_chunks(
        self, name: str, path: Path, offset: int, progress: Progress | None
    ) -> None:
        total = path.stat().st_size
        if offset > total:
            offset = 0  # the agent holds something longer under this name: start again
        with path.open("rb") as f:
            while True:
                f.seek(offset)
                chunk = f.read(self.chunk_bytes)
                if not chunk and offset > 0:
                    break
                answer = await self._json(
                    "PUT", f"/files/{quote(name)}", params={"offset": offset}, content=chunk
                )
                offset = int(answer["size"])
                if progress is not None:
                    progress(offset, total)
                if offset >= total:
                    break

    async def start(
        self,
        execution_id: str,
        env: dict[str, str],
        requirements: list[str] | None = None,
        num_gpus: int = 1,
    ) -> dict[str, Any]:
        body = {
            "execution_id": execution_id,
            "env": env,
            "requirements": list(requirements or []),
            "num_gpus": num_gpus,
        }
        result: dict[str, Any] = await self._json("POST", "/start", json=body)
        return result

    async def events(self, after: int, limit: int = 1000) -> EventsPage:
        body = await self._json("GET", "/events", params={"after": after, "limit": limit})
        return EventsPage(
            events=list(body["events"]),
            last_seq=int(body["last_seq"]),
            phase=body["phase"],
            exit_code=body.get("exit_code"),
        )

    async def log(self, after: int = 0) -> LogChunk:
        body = await self._json("GET", "/log", params={"after": after})
        return LogChunk(text=body["text"], next=int(body["next"]), size=int(body["size"]))

    async def cancel(self) -> bool:
        """SIGTERM to the trainer (it checkpoints and exits 0); False when nothing ran."""
        body = await self._json("POST", "/cancel")
        return bool(body.get("signalled"))

    async def artifacts(self, *, checkpoints: bool = False) -> list[Artifact]:
        body = await self._json("GET", "/artifacts", params={"checkpoints": int(checkpoints)})
        return [Artifact(a["path"], int(a["size"]), a["sha256"]) for a in body["artifacts"]]

    async def download(
        self,
        artifact: Artifact,
        dest: Path,
        progress: Progress | None = None,
    ) -> Path:
        """Fetch one artifact to ``dest``, resuming a ``dest.part`` left by an earlier cut."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        if offset > artifact.size:
            part.unlink()
            offset = 0
        with part.open("ab") as f:
            while offset < artifact.size:
                response = await self._request(
                    "GET",
                    f"/artifacts/{quote(artifact.path)}",
                    params={"offset": offset, "length": self.chunk_bytes},
                )
                if not response.content:
                    raise AgentError(
                        f"{artifact.path}: the agent sent no bytes at offset {offset}",
                        status=response.status_code,
                    )
                f.write(response.content)
                f.flush()
                offset += len(response.content)
                if progress is not None:
                    progress(offset, artifact.size)
        digest = await asyncio.to_thread(sha256_file, part)
        if digest != artifact.sha256:
            part.unlink()
            raise AgentError(
                f"{artifact.path}: checksum mismatch after download (got {digest[:12]}…, "
                f"the pod has {artifact.sha256[:12]}…); it will be downloaded again",
                status=0,
                error="checksum_mismatch",
            )
        part.replace(dest)
        return dest

    async def collected(self) -> None:
        await self._json("POST", "/collected")


def _agent_error(method: str, path: str, response: httpx.Response) -> AgentError:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        body = None
    error = body.get("error", "") if isinstance(body, dict) else ""
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    if response.status_code == 401:
        message = "the pod agent refused the job's token (a different run owns this pod?)"
    else:
        message = f"{method} {path}: the pod agent answered {response.status_code}"
        if error:
            message += f" {error}"
        if detail:
            message += f": {detail}"
    return AgentError(message, status=response.status_code, error=error, body=body)
