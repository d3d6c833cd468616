"""A stand-in for the Hugging Face Hub on 127.0.0.1: the part of its HTTP API that
huggingface_hub's ``create_repo`` and ``upload_folder`` use for small files (create a repo, ask
the upload mode of each file, commit files inline as base64). It records what it was sent so a
test can assert the repo's visibility and the exact files and their bytes.

Every file is answered with upload mode "regular" (inline in the commit), so no LFS or Xet
transfer is involved; a request for any other path is recorded and answered 404, so a test sees
when huggingface_hub starts to need more of the API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeRepo:
    repo_id: str
    visibility: str
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.unknown: list[str] = []
        self.tokens: list[str | None] = []
        self.metadata: list[dict[str, Any]] = []  # README front matter the client had checked
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeHub:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.url = future.result(timeout=10)
        return self

    async def _start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate_yaml)
        app.router.add_post("/api/models/{owner}/{name}/preupload/{revision}", self._preupload)
        app.router.add_post("/api/models/{owner}/{name}/commit/{revision}", self._commit)
        # huggingface_hub 2 asks once a day for a registry of AI agent harnesses (to label
        # its user agent); it copes with a 404, and it has nothing to do with a push
        app.router.add_get("/api/agent-harnesses", self._not_kept)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- routes ---------------------------------------------------------------------------------
    def _token(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        self.tokens.append(auth.removeprefix("Bearer ") if auth else None)

    async def _create(self, request: web.Request) -> web.Response:
        self._token(request)
        body = await request.json()
        owner = body.get("organization") or "user"
        repo_id = f"{owner}/{body['name']}"
        if repo_id not in self.repos:
            # huggingface_hub 2 sends "visibility"; older clients sent "private": true/false
            visibility = body.get("visibility") or ("private" if body.get("private") else "public")
            self.repos[repo_id] = FakeRepo(repo_id, visibility)
        return web.json_response({"url": f"{self.url}/{repo_id}", "name": repo_id})

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        """The README's front matter (between its first two ``---`` lines) must be a YAML
        mapping; the Hub checks more."""
        import yaml

        body = await request.json()
        front = re.match(r"---\n(.*?)\n---", body.get("content") or "", re.DOTALL)
        try:
            data = yaml.safe_load(front.group(1)) if front else None
        except yaml.YAMLError as err:
            return web.json_response({"errors": [{"message": str(err)}]}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"errors": [{"message": "not a mapping"}]}, status=400)
        self.metadata.append(data)
        return web.json_response({"errors": [], "warnings": []})

    async def _preupload(self, request: web.Request) -> web.Response:
        self._token(request)
        body = await request.json()
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            for f in body.get("files", [])
        ]
        return web.json_response({"files": files, "commitOid": "0" * 40})

    async def _commit(self, request: web.Request) -> web.Response:
        self._token(request)
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = self.repos.get(repo_id)
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        raw = await request.read()
        summary = ""
        for line in raw.decode("utf-8").splitlines():
            if not line.strip():
                continue
            item: dict[str, Any] = json.loads(line)
            value = item.get("value", {})
            if item.get("key") == "header":
                summary = value.get("summary", "")
            elif item.get("key") == "file":
                repo.files[value["path"]] = base64.b64decode(value["content"])
            else:
                self.unknown.append(f"commit item {item.get('key')}")
        repo.commits.append(summary)
        oid = hashlib.sha1(raw).hexdigest()
        return web.json_response(
            {
                "commitUrl": f"{self.url}/{repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            }
        )

    async def _not_kept(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "not kept here"}, status=404)

    async def _other(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        return web.json_response({"error": "not in the fake Hub"}, status=404)
