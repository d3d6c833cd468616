"""Runs a trainer as a subprocess on this machine (DESIGN.md §5).

The trainer starts in its own session (it outlives the app, and Ctrl-C in a terminal reaches it
only through ``cancel``) with a clean environment: the contract's variables, and none of a frozen
app's library paths. Its stdout and stderr go to ``trainer.log`` in the job's folder; the
launcher tails that file to ``on_output``. Everything is polled from the current asyncio loop
(plain asyncio or qasync alike), so there are no threads here.

When the process ends, its exit code is recorded. A job that ended without a final alert is
looked up in the run's event log (a final alert sent while the receiver was down is there);
failing that, it is marked failed with the last lines of its log as the error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from app.core import paths
from app.core.event_log import events_of_job
from app.core.ingest import Ingestor
from app.core.jobs import Job, is_final
from app.core.launcher import (
    CONTRACT_VARIABLES,
    ExitCallback,
    LaunchError,
    LaunchStatus,
    OutputCallback,
    ReceiverAddress,
    contract_env,
    output_dir_conflict,
    secret_free_env_view,
    stored_resume_config,
    work_dir_of,
)
from app.core.processes import process_start_time, same_process, signal_group
from app.core.store import Store
from app.core.tokens import hash_token, new_job_token
from app.core.trainer_python import clean_environment, launch_python
from trainer.config import RunConfig
from trainer.events import EVENT_LOG_NAME

log = logging.getLogger(__name__)

LOG_NAME = "trainer.log"
CONFIG_NAME = "config.json"
DEFAULT_GRACE_S = 60.0
ERROR_TAIL_LINES = 15
# a queued job without a pid younger than this may be starting in another Tunedeck process
STARTING_S = 60.0
_READ_CHUNK = 1 << 20


@dataclass
class _Run:
    job_id: str
    pid: int
    started_at: float | None
    log_path: Path
    output_dir: Path | None
    proc: subprocess.Popen[bytes] | None = None  # None when reattached to another's child
    offset: int = 0  # in the trainer's log
    events_offset: int = 0  # in events.jsonl, where this run's events begin
    partial: bytes = b""
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    exit_code: int | None = None
    cancel_requested: bool = False
    killed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class LocalLauncher:
    """Starts, follows, cancels and reattaches trainer processes on this machine."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor | None = None,
        *,
        receiver: ReceiverAddress | None = None,
        python: str | None = None,
        trainer_args: Sequence[str] = ("-m", "trainer"),
        base_dir: Path | None = None,
        on_output: OutputCallback | None = None,
        on_exit: ExitCallback | None = None,
        hf_token: str | None = None,
        hf_token_source: Callable[[], Awaitable[str | None]] | None = None,
        extra_env: Mapping[str, str] | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        poll_s: float = 0.2,
    ) -> None:
        self.store = store
        self.ingestor = ingestor or Ingestor(store)
        self.receiver = receiver
        # the configured training Python (Settings.trainer_python; None: the saved settings',
        # '': none), resolved by launch_python at every start: a new choice applies at once
        self.python = python
        self.trainer_args = tuple(trainer_args)
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.on_output = on_output
        self.on_exit = on_exit
        self.hf_token = hf_token
        # asked at every start, so that a token saved in Settings is used by the next run
        self.hf_token_source = hf_token_source
        self.extra_env = dict(extra_env or {})
        self.grace_s = grace_s  # what cancel() gives a trainer when the caller does not say
        self.poll_s = poll_s
        self._runs: dict[str, _Run] = {}

    # -- start ---------------------------------------------------------------------------------

    def command(self, config_path: Path, job_id: str, python: str) -> list[str]:
        return [
            python,
            *self.trainer_args,
            "--config",
            str(config_path),
            "--execution-id",
            job_id,
        ]

    def environment(
        self, job: Job, token: str, cfg: RunConfig, hf_token: str | None = None
    ) -> dict[str, str]:
        env = clean_environment(os.environ)
        env.update(self.extra_env)
        env.update(
            contract_env(
                job,
                token=token,
                receiver=self.receiver,
                cfg=cfg,
                hf_token=hf_token or self.hf_token,
            )
        )
        return env

    def _may_be_running(self, job: Job) -> bool:
        run = self._runs.get(job.id)
        if run is not None:
            return not run.done.is_set()
        if job.pid is not None:
            return same_process(job.pid, job.pid_started_at)
        # a queued job without a pid may be starting in another Tunedeck process right now
        return job.status == "queued" and time.time() - job.created_at < STARTING_S

    def _refuse_shared_output(self, job_id: str, output_dir: Path) -> None:
        other = output_dir_conflict(self.store, job_id, output_dir, self._may_be_running)
        if other is not None:
            raise LaunchError(
                f"job {other.id} ({other.name}) is {other.status} and writes to {output_dir}; "
                "two runs in one output folder would mix their metrics and checkpoints",
                f"Choose another output folder (output.output_dir), or wait until job {other.id} "
                "has ended (or cancel it).",
            )

    async def start(self, job: Job, cfg: RunConfig, *, work_dir: Path | None = None) -> None:
        """Start a queued job's trainer in ``work_dir`` (default: the launcher's ``base_dir``)."""
        current = self.store.require_job(job.id)
        if current.status != "queued":
            raise LaunchError(
                f"job {job.id} is {current.status}, not queued",
                "Resume a finished job with `resume`, or create a new job.",
            )
        if job.id in self._runs and not self._runs[job.id].done.is_set():
            raise LaunchError(f"job {job.id} is already running", "Cancel it first.")
        # an installed app is not a Python (`tunedeck-gui -m trainer` would only fail): the
        # one rule refuses it with the setup hint before anything is written
        python = launch_python(configured=self.python)
        work_dir = work_dir or self.base_dir
        output_dir = cfg.resolved_output_dir(work_dir)
        self._refuse_shared_output(job.id, output_dir)
        hf_token = await self.hf_token_source() if self.hf_token_source is not None else None
        folder = paths.job_dir(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        config_path = folder / CONFIG_NAME
        config_text = cfg.to_json()  # RunConfig holds no secrets: they travel in the environment
        config_path.write_text(config_text, encoding="utf-8")
        log_path = folder / LOG_NAME
        token = new_job_token()
        # the token must be known before the trainer can post its first alert
        self.store.update_job(
            job.id,
            token_hash=hash_token(token),
            config_json=config_text,
            log_path=str(log_path),
            output_dir=str(output_dir),
            exit_code=None,
        )
        command = self.command(config_path, job.id, python)
        events_offset = _size(output_dir / EVENT_LOG_NAME)
        env = self.environment(current, token, cfg, hf_token)
        view = secret_free_env_view({k: env[k] for k in CONTRACT_VARIABLES if k in env})
        shown = " ".join(f"{k}={v}" for k, v in view.items())
        with log_path.open("ab") as log_file:
            log_file.write(
                f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting job {job.id} in {work_dir}\n"
                f"--- environment: {shown}\n".encode()
            )
            log_file.flush()
            offset = log_file.tell()
            proc = self._spawn(command, env, log_file, work_dir)
        started_at = process_start_time(proc.pid)
        job_now = self.store.update_job(job.id, pid=proc.pid, pid_started_at=started_at)
        log.info("started job %s as pid %s: %s", job.id, proc.pid, " ".join(command))
        run = _Run(job.id, proc.pid, started_at, log_path, output_dir, proc=proc, offset=offset)
        run.events_offset = events_offset
        self._follow(run)
        self.ingestor.job_changed(job_now)

    def _spawn(
        self, command: list[str], env: dict[str, str], log_file: IO[bytes], cwd: Path
    ) -> subprocess.Popen[bytes]:
        # its own session (process group on Windows): it survives the app, and a terminal's
        # Ctrl-C reaches only us; we pass it on as a clean cancel
        creationflags = 0
        if sys.platform == "win32":
            creationflags = subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=sys.platform != "win32",
                creationflags=creationflags,
            )
        except OSError as err:
            raise LaunchError(
                f"cannot start the trainer with {command[0]}: {err.strerror or err}",
                "Check the training Python in Settings (it needs Tunedeck's trainer installed).",
            ) from err

    async def resume(self, job_id: str) -> Job:
        """Start a cancelled or failed job again as the same job, from its newest checkpoint."""
        job = self.store.require_job(job_id)
        if not is_final(job.status):
            raise LaunchError(f"job {job_id} is {job.status}", "Only a finished job resumes.")
        if job.target != "local":  # a cloud job's launcher decides (RunPodLauncher.resume)
            raise LaunchError(
                f"job {job_id} ran on {job.target}, not on this computer",
                "Duplicate it as a new run; its downloaded checkpoints are in its output folder.",
            )
        cfg = stored_resume_config(job)
        # a job turns final on its last alert while the trainer may still be saving: starting
        # a second trainer on the same output folder then would race the first one's files
        running = self._runs.get(job_id)
        if (running is not None and not running.done.is_set()) or (
            job.pid is not None and same_process(job.pid, job.pid_started_at)
        ):
            raise LaunchError(
                f"job {job_id}'s trainer is still finishing (saving its checkpoint)",
                "Wait until its process has exited, then resume.",
            )
        # where the job first ran, whoever resumes it: its checkpoints are there
        work_dir = work_dir_of(job, cfg, self.base_dir)
        self._refuse_shared_output(job_id, cfg.resolved_output_dir(work_dir))  # before reopening
        launch_python(configured=self.python)  # no training environment: the job stays as it was
        self.store.reopen_job(job_id)
        job = self.store.update_job(job_id, config_json=cfg.to_json())
        await self.start(job, cfg, work_dir=work_dir)
        return self.store.require_job(job_id)

    # -- follow --------------------------------------------------------------------------------

    def _follow(self, run: _Run) -> None:
        self._runs[run.job_id] = run
        run.task = asyncio.get_running_loop().create_task(
            self._watch(run), name=f"follow-{run.job_id}"
        )

    async def _watch(self, run: _Run) -> None:
        try:
            while True:
                self._pump(run)
                if run.proc is not None:
                    code = run.proc.poll()
                    if code is not None:
                        run.exit_code = code
                        break
                elif not same_process(run.pid, run.started_at):
                    break
                await asyncio.sleep(self.poll_s)
            self._pump(run, final=True)
            self._finish(run)
        finally:
            run.done.set()

    def _pump(self, run: _Run, final: bool = False) -> None:
        """Hand new complete lines of the log to ``on_output`` (a bounded read per call)."""
        try:
            with run.log_path.open("rb") as f:
                f.seek(run.offset)
                data = f.read(_READ_CHUNK)
        except OSError:
            return
        if not data and not (final and run.partial):
            return
        run.offset += len(data)
        text = run.partial + data
        lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        run.partial = b"" if final else lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            run.tail.append(line)
            if self.on_output is not None:
                try:
                    self.on_output(run.job_id, line)
                except Exception:
                    log.exception("on_output failed for job %s", run.job_id)
        if final and len(data) == _READ_CHUNK:
            self._pump(run, final=True)

    def _finish(self, run: _Run) -> None:
        self.store.update_job(run.job_id, exit_code=run.exit_code)
        self._recover_from_event_log(run)
        job = self.store.get_job(run.job_id)
        if job is not None and not job.is_final:
            status, error = self._outcome_without_alert(run)
            if status == "failed":  # the trainer could not send its job_failed: raise it for it
                self._alert_failure(job, run, error)
            job = self.store.set_status(run.job_id, status, error)
        if job is not None:
            self.ingestor.job_changed(job)
        if self.on_exit is not None:
            try:
                self.on_exit(run.job_id, run.exit_code)
            except Exception:
                log.exception("on_exit failed for job %s", run.job_id)

    def _alert_failure(self, job: Job, run: _Run, error: str) -> None:
        """A job_failed alert (stored, notified like the trainer's own) for a silent death."""
        alert = {
            "type": "job_failed",
            "job_id": job.id,
            "user_id": job.user_id,
            "status": "failed",
            "current_step": job.current_step,
            "error_type": "process_ended",
            "error_message": error,
            "exit_code": run.exit_code,
        }
        try:
            self.ingestor.ingest_alert(alert)
        except Exception:  # the job must still be closed below
            log.exception("job %s: could not record its failure alert", job.id)

    def _outcome_without_alert(self, run: _Run) -> tuple[str, str]:
        last = "\n".join(list(run.tail)[-ERROR_TAIL_LINES:]) or "(the log is empty)"
        if run.killed:
            return "cancelled", "the trainer did not stop in time and was killed"
        if run.proc is None:
            return "failed", (
                f"the trainer process (pid {run.pid}) ended while Tunedeck was not watching; "
                f"its outcome is unknown. Last lines of its log:\n{last}"
            )
        code = run.exit_code
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return "failed", (
            f"the trainer ended ({why}) without reporting an outcome. Last lines of its log:\n"
            f"{last}"
        )

    def _recover_from_event_log(self, run: _Run) -> None:
        """Ingest what the receiver missed from the run's ``events.jsonl``.

        The trainer gives up sending when the receiver is down as it exits; every event is in
        its event log, so this is the local pull path. Ingest merges by step and stores an alert
        once, so events the receiver did get change nothing.
        """
        if run.output_dir is None:
            return
        try:
            points, alerts = events_of_job(
                run.output_dir / EVENT_LOG_NAME, run.job_id, run.events_offset
            )
        except OSError:
            return
        try:
            for i in range(0, len(points), 500):
                self.ingestor.ingest_metrics(run.job_id, points[i : i + 500])
            for alert in alerts:
                self.ingestor.ingest_alert(alert)
        except Exception:  # a damaged log must not keep the job from being closed
            log.exception("job %s: could not read back %s", run.job_id, EVENT_LOG_NAME)

    # -- control -------------------------------------------------------------------------------

    async def cancel(self, job_id: str, grace_s: float | None = None) -> None:
        """SIGTERM (the trainer saves a checkpoint and reports job_cancelled), then SIGKILL
        after ``grace_s`` (default: the launcher's). A job with no live process is just marked
        cancelled."""
        grace_s = self.grace_s if grace_s is None else grace_s
        run = self._runs.get(job_id)
        if run is None or run.done.is_set():
            job = self.store.get_job(job_id)
            if job is not None and not job.is_final:
                if job.pid and same_process(job.pid, job.pid_started_at):
                    await self.reattach(job)
                    run = self._runs.get(job_id)
                else:
                    job = self.store.set_status(job_id, "cancelled", "cancelled before it ran")
                    self.ingestor.job_changed(job)
                    return
            if run is None or run.done.is_set():
                return
        run.cancel_requested = True
        signal_group(run.pid)
        try:
            await asyncio.wait_for(run.done.wait(), grace_s)
        except TimeoutError:
            log.warning("job %s did not stop within %.0f s; killing it", job_id, grace_s)
            run.killed = True
            signal_group(run.pid, hard=True)
            await run.done.wait()

    def status(self, job_id: str) -> LaunchStatus:
        run = self._runs.get(job_id)
        if run is not None:
            return LaunchStatus(job_id, not run.done.is_set(), run.pid, run.exit_code)
        job = self.store.get_job(job_id)
        if job is None or job.pid is None:
            return LaunchStatus(job_id, False)
        alive = not job.is_final and same_process(job.pid, job.pid_started_at)
        return LaunchStatus(job_id, alive, job.pid, job.exit_code)

    async def wait(self, job_id: str) -> int | None:
        run = self._runs.get(job_id)
        if run is None:
            return self.status(job_id).exit_code
        await run.done.wait()
        return run.exit_code

    async def reattach(self, job: Job) -> bool:
        """Follow a job whose trainer is still running after the app restarted (True), or mark
        it failed with the reason (False). Output is tailed from the log's current end."""
        job = self.store.get_job(job.id) or job
        if job.is_final:
            return False
        if job.id in self._runs and not self._runs[job.id].done.is_set():
            return True
        if job.pid is None:
            if time.time() - job.created_at < STARTING_S:
                return False  # another process (`tunedeck run`) is starting it right now
            failed = self.store.set_status(
                job.id, "failed", "the trainer never started (Tunedeck closed before it did)"
            )
            self.ingestor.job_changed(failed)
            return False
        log_path = Path(job.log_path) if job.log_path else paths.job_dir(job.id) / LOG_NAME
        output_dir = Path(job.output_dir) if job.output_dir else None
        run = _Run(job.id, job.pid, job.pid_started_at, log_path, output_dir)
        if not same_process(job.pid, job.pid_started_at):
            self._pump(run, final=True)
            self._finish(run)
            run.done.set()
            return False
        with contextlib.suppress(OSError):
            run.offset = log_path.stat().st_size
        self._follow(run)
        return True

    async def reattach_all(self) -> list[str]:
        """Reattach every unfinished local job in the store; the ids still running."""
        running = []
        for job in self.store.list_jobs():
            if job.target == "local" and not job.is_final and await self.reattach(job):
                running.append(job.id)
        return running

    async def close(self) -> None:
        """Stop following (the trainers keep running; ``reattach`` finds them again)."""
        for run in list(self._runs.values()):
            if run.task is not None and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
        self._runs.clear()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
