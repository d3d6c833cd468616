"""Tunedeck's pod agent: one standard-library file that runs on a RunPod pod (DESIGN.md §6).

A desktop behind a home router cannot receive a POST from a pod, so the pod serves the app
instead, through RunPod's HTTPS proxy: uploads (trainer package, config, dataset, and for a
resumed run the checkpoint it continues from, unpacked into the output folder before the trainer
starts), start, the
event log from a sequence number, the trainer log, cancel, artifact downloads. The app sends
this file's source in the pod's environment (``app.core.runpod.bootstrap``), so it imports
nothing outside the standard library and stays small.

Every request must carry ``Authorization: Bearer $TUNEDECK_AGENT_TOKEN`` (compared in constant
time); anything else gets 401 and nothing more. Each request is bounded in size so it stays far
under the proxy's 100 s cut; uploads and downloads are chunked, resumable and checksummed.

The pod guards its own bill: if a finished run is not collected within ``TUNEDECK_AGENT_GRACE_S``,
or no authorised request comes for ``TUNEDECK_AGENT_IDLE_CAP_S`` while nothing trains, the agent
deletes its own pod with the pod-scoped ``RUNPOD_API_KEY`` RunPod sets (useless for anything
else on the account), then exits. That key is never passed to the trainer.

Environment: TUNEDECK_AGENT_TOKEN (required), TUNEDECK_AGENT_PORT (8765; the fake RunPod's
TUNEDECK_SIM_PORT_<port> overrides where it listens), TUNEDECK_AGENT_HOST (0.0.0.0),
TUNEDECK_AGENT_HOME (/workspace/tunedeck), TUNEDECK_AGENT_GRACE_S, TUNEDECK_AGENT_IDLE_CAP_S,
TUNEDECK_AGENT_PYTHON (the trainer's interpreter; default this one), TUNEDECK_AGENT_SKIP_INSTALL,
TUNEDECK_RUNPOD_API_URL, RUNPOD_POD_ID, RUNPOD_API_KEY.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

AGENT_VERSION = "1"
DEFAULT_PORT = 8765
MAX_JSON_BYTES = 1 << 20
MAX_CHUNK_BYTES = 32 << 20  # the client sends 8 MiB; a chunk must cross the proxy in << 100 s
MAX_FILE_BYTES = 256 << 30
MAX_LOG_BYTES = 256 << 10
MAX_EVENTS = 5000
EVENT_READ_BYTES = 4 << 20
# Names a client may upload: the trainer package, the run config, its datasets and the checkpoint
# a resumed run continues from. Nothing else is ever written from a request, so no path can point
# outside the agent's folder.
UPLOAD_NAME = re.compile(
    r"(trainer\.tar\.gz|checkpoint\.tar\.gz|config\.json"
    r"|(eval_)?dataset\.((jsonl|json|csv)(\.gz)?|parquet))"
)
CHECKPOINT = "checkpoint.tar.gz"
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# The agent's own secrets and RunPod's pod key stay out of the trainer's environment.
PRIVATE_ENV = ("RUNPOD_API_KEY", "TUNEDECK_AGENT_TOKEN", "TUNEDECK_AGENT_SRC")
PRIVATE_PREFIXES = ("RUNPOD_", "TUNEDECK_AGENT_")
TERMINATE_ATTEMPTS = 5


def log(message: str) -> None:
    line = "{} pod-agent: {}".format(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message)
    print(line, file=sys.stderr, flush=True)


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return float(default)


class Refused(Exception):
    """A request the agent answers with an error status and a JSON reason."""

    def __init__(self, status: int, error: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or error)
        self.status, self.body = status, dict({"error": error, "detail": detail}, **extra)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EventIndex:
    """Byte offsets of this job's lines in events.jsonl, read incrementally (only new bytes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.job_id: str | None = None
        self.lock = threading.Lock()
        self.pos = 0
        self.seqs: list[int] = []
        self.offsets: list[tuple[int, int]] = []

    def refresh(self) -> None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below, read in slices
        except FileNotFoundError:
            return
        with f:
            while True:  # in slices: a long run's log is not read into memory at once
                f.seek(self.pos)
                data = f.read(EVENT_READ_BYTES)
                start = 0
                while True:
                    end = data.find(b"\n", start)
                    if end < 0:
                        break  # a line still being written: read it next time
                    self._add(data[start:end], self.pos + start)
                    start = end + 1
                self.pos += start
                if start == 0:
                    return

    def _add(self, raw: bytes, offset: int) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return  # a torn line left by a killed process
        if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
            return
        # The output folder belongs to this job alone, so a line without job_id is its own.
        if self.job_id and event.get("job_id", self.job_id) != self.job_id:
            return
        if self.seqs and event["seq"] <= self.seqs[-1]:
            return
        self.seqs.append(event["seq"])
        self.offsets.append((offset, len(raw)))

    def page(self, after: int, limit: int) -> tuple[list[Any], int]:
        with self.lock:
            self.refresh()
            lo, hi = 0, len(self.seqs)
            while lo < hi:  # first index with seq > after
                mid = (lo + hi) // 2
                if self.seqs[mid] <= after:
                    lo = mid + 1
                else:
                    hi = mid
            wanted = self.offsets[lo : lo + limit]
            last = self.seqs[-1] if self.seqs else 0
        events = []
        if wanted:
            with open(self.path, "rb") as f:
                for offset, length in wanted:
                    f.seek(offset)
                    events.append(json.loads(f.read(length)))
        return events, last


class Agent:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.token = environ["TUNEDECK_AGENT_TOKEN"].encode()
        self.home = Path(environ.get("TUNEDECK_AGENT_HOME", "/workspace/tunedeck")).resolve()
        self.files = self.home / "files"
        self.work = self.home / "work"
        self.output = self.home / "output"
        self.log_path = self.home / "trainer.log"
        for folder in (self.files, self.work, self.output):
            folder.mkdir(parents=True, exist_ok=True)
        self.python = environ.get("TUNEDECK_AGENT_PYTHON") or sys.executable
        self.grace_s = env_float("TUNEDECK_AGENT_GRACE_S", 1800)
        self.idle_cap_s = env_float("TUNEDECK_AGENT_IDLE_CAP_S", 3600)
        self.collected_linger_s = env_float("TUNEDECK_AGENT_COLLECTED_S", 120)
        self.lock = threading.RLock()  # state; held briefly, never across network reads
        self.files_lock = threading.Lock()  # uploads (taken before ``lock`` where both are)
        self.phase, self.error = "waiting", ""
        self.exit_code: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.finished_at: float | None = None
        self.collected_at: float | None = None
        self.last_contact = time.monotonic()
        self.verified: dict[str, str] = {}  # upload name -> sha256, once checked
        self.events = EventIndex(self.output / "events.jsonl")
        self.hash_cache: dict[tuple[str, int, int], str] = {}
        self.stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    # -- authorisation and state ---------------------------------------------------------------

    def authorised(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        return scheme == "Bearer" and hmac.compare_digest(given.strip().encode(), self.token)

    def health(self, since_contact: float) -> dict[str, Any]:
        with self.lock:
            _, last = self.events.page(0, 0)
            return {
                "phase": self.phase,
                "exit_code": self.exit_code,
                "trainer_pid": self.proc.pid if self.proc else None,
                "agent_version": AGENT_VERSION,
                "last_seq": last,
                "since_contact_s": round(since_contact, 3),
                "cancelled": self.cancelled,
                "error": self.error,
                "collected": self.collected_at is not None,
            }

    # -- uploads -------------------------------------------------------------------------------

    def upload_path(self, name: str) -> Path:
        if not UPLOAD_NAME.fullmatch(name):
            raise Refused(
                404,
                "unknown_file",
                "uploads: trainer.tar.gz, config.json, dataset.*, " + CHECKPOINT,
            )
        return self.files / name

    def file_state(self, name: str) -> dict[str, Any]:
        path = self.upload_path(name)
        size = path.stat().st_size if path.exists() else 0
        return {"name": name, "size": size, "sha256": self.verified.get(name)}

    def write_chunk(
        self, name: str, offset: int, body_file: io.BufferedIOBase, length: int
    ) -> dict[str, Any]:
        path = self.upload_path(name)
        with self.files_lock:
            with self.lock:
                if self.phase != "waiting":
                    raise Refused(409, "started", "the run has started; files are fixed now")
            size = path.stat().st_size if path.exists() else 0
            if offset not in (0, size):
                raise Refused(409, "offset", "resume at the size the agent has", size=size)
            if offset + length > MAX_FILE_BYTES:
                raise Refused(413, "too_large", f"file over {MAX_FILE_BYTES} bytes")
            self.verified.pop(name, None)
            with open(path, "r+b" if path.exists() else "wb") as f:
                f.seek(offset)
                f.truncate()
                remaining = length
                while remaining:
                    block = body_file.read(min(remaining, 1 << 20))
                    if not block:
                        break  # the connection was cut: keep what came, the client resumes
                    f.write(block)
                    remaining -= len(block)
            return {"name": name, "size": offset + length - remaining}

    def finish_upload(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        path = self.upload_path(name)
        want_sha, want_size = body.get("sha256"), body.get("size")
        if not isinstance(want_sha, str) or not isinstance(want_size, int):
            raise Refused(422, "invalid", "body needs sha256 (hex string) and size (int)")
        with self.files_lock:
            size = path.stat().st_size if path.exists() else 0
            got = sha256_of(path) if path.exists() else hashlib.sha256().hexdigest()
            if size != want_size or not hmac.compare_digest(got, want_sha.lower()):
                path.unlink(missing_ok=True)  # corrupt: the client starts this file again
                raise Refused(
                    409, "checksum_mismatch", "upload again from 0", size=size, sha256=got
                )
            self.verified[name] = got
            return {"name": name, "size": size, "sha256": got, "verified": True}

    # -- start ---------------------------------------------------------------------------------

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        execution_id = body.get("execution_id")
        env, requirements = body.get("env", {}), body.get("requirements", [])
        num_gpus = body.get("num_gpus", int(self.environ.get("RUNPOD_GPU_COUNT", "1") or 1))
        if not isinstance(execution_id, str) or not re.fullmatch(r"[\w.-]{1,200}", execution_id):
            raise Refused(422, "invalid", "execution_id: letters, digits, '.', '_', '-'")
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise Refused(422, "invalid", "env: an object of strings")
        for key in env:
            if not ENV_NAME.fullmatch(key) or key.startswith(PRIVATE_PREFIXES):
                raise Refused(422, "invalid", f"env: {key} may not be set for the trainer")
        if not isinstance(requirements, list) or not all(
            isinstance(r, str) and re.fullmatch(r"[A-Za-z0-9_.\-\[\],<>=!~ ]{1,200}", r)
            for r in requirements
        ):
            raise Refused(422, "invalid", "requirements: a list of pinned specs like name==1.2")
        if not isinstance(num_gpus, int) or not 0 <= num_gpus <= 64:
            raise Refused(422, "invalid", "num_gpus: an integer from 0 to 64")
        with self.files_lock, self.lock:
            if self.phase != "waiting":
                raise Refused(409, "started", "the run was started already")
            if "config.json" not in self.verified:
                raise Refused(409, "missing_file", "upload config.json (and finish it) first")
            run_config = self.prepare_config()
            self.events.job_id = env.get("JOB_ID") or execution_id
            self.phase = "installing"
        command = trainer_command(self.python, run_config, execution_id, num_gpus)
        thread = threading.Thread(
            target=self.run_trainer, args=(command, env, requirements), daemon=True
        )
        thread.start()
        return {"phase": "installing", "command": command}

    def prepare_config(self) -> Path:
        """The uploaded config with the pod's own paths: output here, datasets as uploaded."""
        try:
            config = json.loads((self.files / "config.json").read_text("utf-8"))
        except ValueError as err:
            raise Refused(422, "invalid", f"config.json: {err}") from None
        if not isinstance(config, dict) or not all(
            isinstance(config.get(k, {}), dict) for k in ("output", "dataset")
        ):
            raise Refused(422, "invalid", "config.json: not a run config (an object)")
        config.setdefault("output", {})["output_dir"] = str(self.output)
        dataset = config.setdefault("dataset", {})
        for name in sorted(self.verified):
            if name.startswith("dataset."):
                dataset["path"] = str(self.files / name)
            elif name.startswith("eval_dataset."):
                dataset["eval_path"] = str(self.files / name)
        path = self.work / "run.json"
        path.write_text(json.dumps(config, indent=2), "utf-8")
        return path

    def trainer_env(self, env: dict[str, str]) -> dict[str, str]:
        merged = {k: v for k, v in self.environ.items() if not k.startswith(PRIVATE_PREFIXES)}
        for key in PRIVATE_ENV:
            merged.pop(key, None)
        merged.update(env)
        merged["PYTHONUNBUFFERED"] = "1"
        if "trainer.tar.gz" in self.verified:
            package_root = str(self.work / "package")
            merged["PYTHONPATH"] = os.pathsep.join(
                p for p in (package_root, merged.get("PYTHONPATH", "")) if p
            )
        return merged

    def run_trainer(self, command: list[str], env: dict[str, str], requirements: list[str]) -> None:
        with open(self.log_path, "ab") as log_file:
            try:
                if "trainer.tar.gz" in self.verified:
                    unpack(self.files / "trainer.tar.gz", self.work / "package")
                if CHECKPOINT in self.verified:  # resume_from_checkpoint "latest" finds it there
                    unpack(self.files / CHECKPOINT, self.output)
                    (self.files / CHECKPOINT).unlink()  # the pod's disk holds it once
                    log("the checkpoint to resume from is in the output folder")
                if self.environ.get("TUNEDECK_AGENT_SKIP_INSTALL") != "1":
                    self.install(requirements, log_file)
                with self.lock:
                    if self.cancelled:
                        raise RuntimeError("cancelled before training started")
                    proc = self.proc = subprocess.Popen(
                        command,
                        cwd=self.work,
                        env=self.trainer_env(env),
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # /cancel signals the trainer's own group
                    )
                    self.phase = "training"
                log(f"trainer started (pid {proc.pid}): {' '.join(command)}")
                code = proc.wait()
                with self.lock:
                    self.exit_code = code
                    self.phase = "finished" if code == 0 else "failed"
                log(f"trainer exited with {code}")
            except Exception as err:  # any failure here is the run's failure, said in /health
                with self.lock:
                    self.phase, self.error = "failed", str(err)
                log_file.write((f"pod-agent: {err}\n").encode())
                log(f"run failed: {err}")
            finally:
                with self.lock:
                    self.finished_at = time.monotonic()

    def install(self, requirements: list[str], log_file: BinaryIO) -> None:
        present = installed_specs(self.python, requirements)
        missing = [r for r in requirements if r not in present]
        if not missing:
            say = f"all {len(requirements)} requirements present; nothing to install"
        else:
            say = f"installing {len(missing)} of {len(requirements)} requirements"
        log(say)
        log_file.write(f"pod-agent: {say}\n".encode())
        log_file.flush()
        if not missing:
            return
        cmd = [self.python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
        with self.lock:
            proc = self.proc = subprocess.Popen(
                [*cmd, *missing],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        code = proc.wait()
        if self.cancelled:
            raise RuntimeError("cancelled before training started")
        if code != 0:
            raise RuntimeError(f"pip install failed (exit {code}); see the trainer log")

    # -- cancel, artifacts, collected ----------------------------------------------------------

    def cancel(self) -> dict[str, Any]:
        with self.lock:
            self.cancelled = True
            proc = self.proc
            if proc is None or proc.poll() is not None:
                return {"signalled": False, "phase": self.phase}
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the trainer checkpoints and exits 0
        except ProcessLookupError:
            return {"signalled": False, "phase": self.phase}
        log(f"cancel: SIGTERM sent to the trainer's process group {proc.pid}")
        return {"signalled": True, "phase": self.phase}

    def stop_trainer(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            log("exiting while the trainer runs: SIGTERM to it (it checkpoints)")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

    def artifacts(self, checkpoints: bool) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.output.rglob("*")):
            rel = path.relative_to(self.output).as_posix()
            if not path.is_file() or path.is_symlink():
                continue
            if not checkpoints and rel.split("/", 1)[0].startswith("checkpoint-"):
                continue
            stat = path.stat()
            key = (rel, stat.st_size, stat.st_mtime_ns)
            if key not in self.hash_cache:
                self.hash_cache[key] = sha256_of(path)
            found.append({"path": rel, "size": stat.st_size, "sha256": self.hash_cache[key]})
        return found

    def artifact_path(self, rel: str) -> Path:
        if not rel or "\x00" in rel or "\\" in rel:
            raise Refused(404, "not_found", "no such artifact")
        path = (self.output / rel).resolve()
        if not path.is_relative_to(self.output) or not path.is_file():
            raise Refused(404, "not_found", "no such artifact")
        return path

    def collected(self) -> dict[str, Any]:
        with self.lock:
            self.collected_at = time.monotonic()
        log("the app has collected the run")
        return {"ok": True}

    # -- self-guard ----------------------------------------------------------------------------

    def guard_reason(self, now: float) -> str | None:
        with self.lock:
            if self.collected_at is not None and now - self.collected_at > self.collected_linger_s:
                return "the app collected the run and the pod is still up"
            if (
                self.finished_at is not None
                and self.collected_at is None
                and now - self.finished_at > self.grace_s
            ):
                return "the run finished %.0f s ago and the app has not collected it" % (
                    now - self.finished_at
                )
            if self.phase not in ("installing", "training") and now - self.last_contact > (
                self.idle_cap_s
            ):
                return "no request from the app for %.0f s while nothing trains" % (
                    now - self.last_contact
                )
        return None

    def guard(self) -> None:
        tick = max(0.05, min(1.0, self.grace_s / 4, self.idle_cap_s / 4))
        while not self.stopping.wait(tick):
            reason = self.guard_reason(time.monotonic())
            if reason:
                log(f"self-guard: {reason}; terminating this pod")
                self.terminate_pod()
                self.stopping.set()
                if self.server is not None:
                    self.server.shutdown()
                return

    def terminate_pod(self) -> bool:
        pod_id, key = self.environ.get("RUNPOD_POD_ID"), self.environ.get("RUNPOD_API_KEY")
        if not pod_id or not key:
            log("no RUNPOD_POD_ID/RUNPOD_API_KEY: not on a pod, only exiting")
            return False
        base = self.environ.get("TUNEDECK_RUNPOD_API_URL", "https://api.runpod.io").rstrip("/")
        url = "{}/v2/pods/{}".format(base, urllib.parse.quote(pod_id, safe=""))
        for attempt in range(1, TERMINATE_ATTEMPTS + 1):
            request = urllib.request.Request(
                url, method="DELETE", headers={"Authorization": "Bearer " + key}
            )
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    log(f"terminate pod {pod_id}: HTTP {response.status}")
                    return True
            except urllib.error.HTTPError as err:
                if err.code == 404:
                    log(f"terminate pod {pod_id}: already gone")
                    return True
                log(f"terminate pod {pod_id}: HTTP {err.code} (attempt {attempt})")
            except OSError as err:
                log(f"terminate pod {pod_id}: {err} (attempt {attempt})")
            time.sleep(min(2 ** (attempt - 1), 10))
        log(f"terminate pod {pod_id}: gave up after {TERMINATE_ATTEMPTS} attempts")
        return False


def trainer_command(python: str, config_path: Path, execution_id: str, num_gpus: int) -> list[str]:
    """``python -m trainer``; with more than one GPU the trainer itself re-runs under
    ``accelerate launch --multi_gpu --num_processes N`` (trainer/launch.py), which forwards a
    SIGTERM to each worker once so that a cancel still ends in a checkpoint and exit 0."""
    command = [python, "-m", "trainer", "--config", str(config_path), "--execution-id"]
    command.append(execution_id)
    if num_gpus > 1:
        command += ["--num-processes", str(num_gpus)]
    return command


# Runs inside the trainer's interpreter: which specs (==, >=, <) are satisfied there already.
_INSTALLED_PROBE = """
import importlib.metadata as m, json, re, sys
def key(v):
    return tuple(int(x) for x in re.findall(r"[0-9]+", v.split("+")[0])[:3])
tests = {"==": lambda a, b: a.split("+")[0] == b, ">=": lambda a, b: key(a) >= key(b),
         "<": lambda a, b: key(a) < key(b)}
found = []
for spec in json.loads(sys.argv[1]):
    name = re.split(r"[=<>!~ \\[]", spec, maxsplit=1)[0]
    conditions = re.findall(r"(==|>=|<)\\s*([A-Za-z0-9_.]+)", spec)
    try:
        have = m.version(name)
    except m.PackageNotFoundError:
        continue
    if conditions and all(tests[op](have, want) for op, want in conditions):
        found.append(spec)
print(json.dumps(found))
"""


def installed_specs(python: str, requirements: list[str]) -> list[str]:
    """The ``name==version`` specs already satisfied in ``python`` (others go to pip)."""
    if not requirements:
        return []
    result = subprocess.run(
        [python, "-c", _INSTALLED_PROBE, json.dumps(requirements)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        found = json.loads(result.stdout)
    except ValueError:
        return []
    return [str(spec) for spec in found]


def unpack(archive: Path, dest: Path) -> None:
    """Extract an uploaded archive; members that would land outside ``dest`` are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if not target.is_relative_to(root) or not (member.isfile() or member.isdir()):
                raise RuntimeError(f"{archive.name}: refusing member {member.name!r}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")
        else:  # pragma: no cover - Python without extraction filters; members checked above
            tar.extractall(root)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive answers otherwise wait ~40 ms for an ACK
    timeout = 90
    agent: Agent  # set by serve() on a subclass
    server_version = "tunedeck-pod-agent"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not logged: paths are harmless but quiet logs are easier to read

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def do_HEAD(self) -> None:
        self.dispatch("HEAD")

    def dispatch(self, method: str) -> None:
        agent = self.agent
        if not agent.authorised(self.headers.get("Authorization")):
            self.close_connection = True  # the body is not read; the connection cannot be reused
            return self.reply(401, {"error": "unauthorized"})
        with agent.lock:
            since_contact = time.monotonic() - agent.last_contact
            agent.last_contact = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        try:
            self.route(method, parts, query, since_contact)
        except Refused as err:
            self.reply(err.status, err.body)
        except OSError:
            self.close_connection = True  # the client went away mid-answer
        except Exception as err:
            log(f"error answering {method} {url.path}: {err!r}")
            with contextlib.suppress(OSError):
                self.reply(500, {"error": "agent_error", "detail": str(err)})

    def route(
        self, method: str, parts: list[str], query: dict[str, list[str]], since_contact: float
    ) -> None:
        agent = self.agent
        head, rest = parts[0], parts[1:]
        if (method, head) == ("GET", "health") and not rest:
            return self.reply(200, agent.health(since_contact))
        if head == "files" and len(rest) == 1 and method == "GET":
            return self.reply(200, agent.file_state(rest[0]))
        if head == "files" and len(rest) == 1 and method == "PUT":
            length = self.content_length(MAX_CHUNK_BYTES)
            state = agent.write_chunk(rest[0], int_param(query, "offset", 0), self.rfile, length)
            return self.reply(200, state)
        if head == "files" and len(rest) == 2 and rest[1] == "done" and method == "POST":
            return self.reply(200, agent.finish_upload(rest[0], self.json_body()))
        if (method, head) == ("POST", "start") and not rest:
            return self.reply(202, agent.start(self.json_body()))
        if (method, head) == ("GET", "events") and not rest:
            limit = min(max(int_param(query, "limit", 1000), 0), MAX_EVENTS)
            events, last = agent.events.page(int_param(query, "after", 0), limit)
            with agent.lock:
                body = {"events": events, "last_seq": last, "phase": agent.phase}
                body["exit_code"] = agent.exit_code
            return self.reply(200, body)
        if (method, head) == ("GET", "log") and not rest:
            return self.reply(200, read_log(agent.log_path, int_param(query, "after", 0)))
        if (method, head) == ("POST", "cancel") and not rest:
            return self.reply(200, agent.cancel())
        if (method, head) == ("GET", "artifacts") and not rest:
            checkpoints = query.get("checkpoints", ["0"])[0] in ("1", "true")
            return self.reply(200, {"artifacts": agent.artifacts(checkpoints)})
        if (method, head) == ("GET", "artifacts") and rest:
            return self.send_artifact(agent.artifact_path("/".join(rest)), query)
        if (method, head) == ("POST", "collected") and not rest:
            return self.reply(200, agent.collected())
        raise Refused(404, "not_found", "no such endpoint")

    def content_length(self, limit: int) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.isdigit():
            self.close_connection = True
            raise Refused(411, "length_required", "send Content-Length")
        length = int(raw)
        if length > limit:
            self.close_connection = True
            raise Refused(413, "too_large", f"at most {limit} bytes per request")
        return length

    def json_body(self) -> dict[str, Any]:
        raw = self.rfile.read(self.content_length(MAX_JSON_BYTES))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise Refused(422, "invalid", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(422, "invalid", "the body must be a JSON object")
        return body

    def send_artifact(self, path: Path, query: dict[str, list[str]]) -> None:
        size = path.stat().st_size
        offset = min(max(int_param(query, "offset", 0), 0), size)
        length = min(max(int_param(query, "length", MAX_CHUNK_BYTES), 0), MAX_CHUNK_BYTES)
        length = min(length, size - offset)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("X-Total-Size", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(offset)
            remaining = length
            while remaining:
                block = f.read(min(remaining, 1 << 20))
                if not block:
                    break
                self.wfile.write(block)
                remaining -= len(block)

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query.get(name, [default])[0])
    except ValueError:
        raise Refused(422, "invalid", f"{name} must be an integer") from None


def read_log(path: Path, after: int) -> dict[str, Any]:
    size = path.stat().st_size if path.exists() else 0
    after = min(max(after, 0), size)
    data = b""
    if size > after:
        with open(path, "rb") as f:
            f.seek(after)
            data = f.read(MAX_LOG_BYTES)
    return {"text": data.decode("utf-8", "replace"), "next": after + len(data), "size": size}


def listen_port(environ: dict[str, str]) -> int:
    port = int(environ.get("TUNEDECK_AGENT_PORT") or DEFAULT_PORT)
    return int(environ.get(f"TUNEDECK_SIM_PORT_{port}") or port)


def serve(environ: dict[str, str]) -> int:
    if len(environ.get("TUNEDECK_AGENT_TOKEN", "")) < 16:
        log("TUNEDECK_AGENT_TOKEN is missing or too short; refusing to start")
        return 2
    agent = Agent(environ)
    handler = type("AgentHandler", (Handler,), {"agent": agent})
    host = environ.get("TUNEDECK_AGENT_HOST", "0.0.0.0")
    server = ThreadingHTTPServer((host, listen_port(environ)), handler)
    server.daemon_threads = True
    agent.server = server
    threading.Thread(target=agent.guard, daemon=True).start()
    # A stop of the container (or of the test's process) lets a running trainer checkpoint.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log(f"listening on {host}:{server.server_address[1]} (home {agent.home})")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        agent.stop_trainer()
    log("exiting")
    return 0


if __name__ == "__main__":
    sys.exit(serve(dict(os.environ)))
