"""The command line's cloud half: ``tunedeck run CONFIG --target runpod``, ``tunedeck resume JOB``
of a RunPod job (on a new pod), ``tunedeck batch`` and ``tunedeck pods``.

The RunPod key comes from the keyring (Settings → Credentials in the app); it is never read from
a file or the command line. ``run --target runpod`` shows the same progress as a local run plus
a line at each phase with the money spent; Ctrl-C stops the trainer cleanly (its checkpoint is
downloaded) and the pod is terminated before the command returns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from app.core.credentials import CredentialStore, KeyringUnavailable, read_secret
from app.core.ingest import Ingestor
from app.core.jobs import Job, format_duration
from app.core.launcher import LaunchError, ReceiverAddress, create_job_for, start_job
from app.core.runpod.errors import RunPodError
from app.core.store import Store
from trainer.config import RunConfig, load_config, parse_config

if TYPE_CHECKING:
    from app.core.runpod.launcher import RunPodLauncher

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR = 0, 1, 2
NO_KEY_HINT = (
    "Save your RunPod API key in Tunedeck's Settings → Credentials (it is kept in the OS "
    "keyring); create one at https://www.runpod.io/console/user/settings."
)


async def runpod_key(credentials: CredentialStore | None = None) -> str:
    """The stored RunPod key, or a LaunchError that says how to store one."""
    store = credentials or CredentialStore()
    try:
        key = await store.get_async("runpod_api_key")
    except KeyringUnavailable as err:
        raise LaunchError(f"cannot read the RunPod API key: {err.message}", err.hint) from err
    if not key:
        raise LaunchError("no RunPod API key is stored", NO_KEY_HINT)
    return key


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, markup=False)


@contextlib.asynccontextmanager
async def runpod_launcher(
    store: Store,
    ingestor: Ingestor,
    console: Console,
    *,
    quiet_phases: bool = False,
) -> AsyncIterator[RunPodLauncher]:
    from app.core.runpod.endpoints import runpod_endpoints
    from app.core.runpod.launcher import RunPodLauncher

    key = await runpod_key()
    endpoints = runpod_endpoints()
    async with endpoints.client(key) as client:

        def phase(job_id: str, line: str) -> None:
            if not quiet_phases:
                _print(console, f"[runpod] {job_id}: {line}")

        launcher = RunPodLauncher(
            store,
            ingestor,
            client,
            endpoints=endpoints,
            base_dir=Path.cwd(),
            hf_token_source=lambda: read_secret(CredentialStore(), "hf_token"),
            on_phase=phase,
        )
        try:
            yield launcher
        finally:
            await launcher.close()


def _catch_interrupts(cancel: Callable[[], None]) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, cancel)

    def release() -> None:
        for sig in sigs:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    return release


# ------------------------------------------------------------------------------ run --target


async def run_on_runpod(
    cfg: RunConfig | None,
    args: argparse.Namespace,
    console: Console,
    resume_id: str | None = None,
) -> int:
    """A new job for ``cfg``, or the job ``resume_id`` resumed on a new pod; the same display."""
    from app.cli import RunDisplay, summary_lines

    store = Store()
    ingestor = Ingestor(store)
    try:
        async with runpod_launcher(store, ingestor, console) as launcher:
            if resume_id is not None:
                job = store.find_job(resume_id)
            else:
                assert cfg is not None
                job = create_job_for(store, cfg, target="runpod")
            with RunDisplay(job, console, verbose=getattr(args, "verbose", False)) as display:
                ingestor.subscribe(display.event)
                launcher.on_output = display.output
                display.suffix = lambda: launcher.meter(job.id) or ""
                if resume_id is not None:
                    job = await launcher.resume(job.id)
                    cfg = parse_config(job.config())
                else:
                    assert cfg is not None
                    await start_job(store, ingestor, launcher, job, cfg)
                _print(
                    console,
                    f"tunedeck: job {job.id} · {job.method} on {job.model} · RunPod "
                    f"{cfg.runpod.gpu_count}x {cfg.runpod.gpu_type} ({cfg.runpod.cloud}) · "
                    "Ctrl-C stops cleanly and terminates the pod",
                )
                cancelling: list[asyncio.Task[None]] = []

                def interrupted() -> None:
                    if not cancelling:
                        _print(console, "tunedeck: stopping; the checkpoint is downloaded first")
                        cancelling.append(asyncio.ensure_future(launcher.cancel(job.id)))

                release = _catch_interrupts(interrupted)
                try:
                    await launcher.wait(job.id)
                    for task in cancelling:
                        await task
                finally:
                    release()
            job = store.require_job(job.id)
            for line in summary_lines(job):
                _print(console, line)
            _print(console, f"  cost   {launcher.meter(job.id)}")
            for line in phase_lines(launcher, job.id):
                _print(console, f"    {line}")
            return EXIT_OK if job.status == "completed" else EXIT_FAILED
    finally:
        store.close()


def phase_lines(launcher: RunPodLauncher, job_id: str) -> list[str]:
    ledger = launcher.ledger(job_id)
    if ledger is None:
        return []
    out = []
    for phase, spent in ledger.breakdown(time.time()).items():
        seconds = format_duration(spent["seconds"], always_hours=True)
        out.append(f"{phase:<13} {seconds}  ${spent['dollars']:.4f}")
    return out


def _user_errors(fn: Callable[[], int]) -> int:
    """RunPod's refusals reach the user as LaunchError (message and hint), as the CLI prints."""
    try:
        return fn()
    except RunPodError as err:
        raise LaunchError(err.message, err.hint) from err


def cmd_run_runpod(args: argparse.Namespace, console: Console) -> int:
    cfg = load_config(args.config)
    return _user_errors(lambda: asyncio.run(run_on_runpod(cfg, args, console)))


def cmd_resume_runpod(args: argparse.Namespace, console: Console) -> int:
    """``tunedeck resume JOB`` of a RunPod job: a new pod continues from its checkpoint."""
    return _user_errors(lambda: asyncio.run(run_on_runpod(None, args, console, args.job)))


# ------------------------------------------------------------------------------------- batch


@dataclass
class BatchRow:
    config: str
    job_id: str | None = None
    method: str = "-"
    gpu: str = "-"
    steps: str = "-"
    final_loss: str = "-"
    minutes: str = "-"
    dollars: str = "-"
    outcome: str = "-"

    def cells(self) -> tuple[str, ...]:
        return (
            self.config,
            self.method,
            self.gpu,
            self.steps,
            self.final_loss,
            self.minutes,
            self.dollars,
            self.outcome,
        )


BATCH_HEADER = ("config", "method", "GPU", "steps", "final loss", "minutes", "dollars", "outcome")


def batch_table(rows: Sequence[BatchRow]) -> list[str]:
    table = [BATCH_HEADER, *(r.cells() for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(BATCH_HEADER))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


def _fill_row(row: BatchRow, job: Job, cfg: RunConfig, dollars: float | None) -> None:
    row.job_id = job.id
    row.method = job.method
    if job.target == "runpod":
        row.gpu = f"{cfg.runpod.gpu_count}x {cfg.runpod.gpu_type}"
    else:
        row.gpu = "local"
    total = f"/{job.total_steps}" if job.total_steps else ""
    row.steps = f"{job.current_step or 0}{total}"
    row.final_loss = "-" if job.last_loss is None else f"{job.last_loss:.4f}"
    if job.started_at is not None or job.ended_at is not None:
        start = job.started_at or job.created_at
        row.minutes = f"{((job.ended_at or time.time()) - start) / 60:.1f}"
    row.dollars = "0.00" if dollars is None else f"{dollars:.2f}"
    row.outcome = job.status if job.status == "completed" else f"{job.status}: {job.error or ''}"
    row.outcome = row.outcome.splitlines()[0][:80] if row.outcome else "-"


async def run_batch(
    paths: Sequence[Path], args: argparse.Namespace, console: Console
) -> list[BatchRow]:
    from app.core.launcher_local import LocalLauncher
    from app.core.receiver import ReceiverServer
    from app.core.tokens import new_api_key

    configs = [(path, load_config(path)) for path in paths]  # every file valid before any runs
    rows = [BatchRow(str(path)) for path, _ in configs]
    store = Store()
    ingestor = Ingestor(store)
    stack = contextlib.AsyncExitStack()
    launcher: Any
    try:
        if args.target == "runpod":
            launcher = await stack.enter_async_context(runpod_launcher(store, ingestor, console))
        else:
            api_key = new_api_key()
            server = ReceiverServer(ingestor, store, api_key=api_key)
            await server.start()
            stack.push_async_callback(server.stop)
            launcher = LocalLauncher(
                store, ingestor, receiver=ReceiverAddress(server.url, api_key), base_dir=Path.cwd()
            )
            stack.push_async_callback(launcher.close)
        gate = asyncio.Semaphore(max(1, args.parallel))

        async def one(row: BatchRow, cfg: RunConfig) -> None:
            async with gate:
                job = create_job_for(store, cfg, target=args.target)
                row.job_id = job.id
                _print(console, f"tunedeck: {row.config} → job {job.id} ({args.target})")
                try:
                    await start_job(store, ingestor, launcher, job, cfg)
                    await launcher.wait(job.id)
                except (LaunchError, RunPodError) as err:
                    if not store.require_job(job.id).is_final:
                        store.set_status(job.id, "failed", str(err))
                dollars = None
                if args.target == "runpod":
                    ledger = launcher.ledger(job.id)
                    dollars = ledger.dollars(time.time()) if ledger is not None else None
                _fill_row(row, store.require_job(job.id), cfg, dollars)
                _print(console, f"tunedeck: job {job.id}: {row.outcome}")

        await asyncio.gather(*(one(row, cfg) for row, (_, cfg) in zip(rows, configs, strict=True)))
        return rows
    finally:
        await stack.aclose()
        store.close()


def _user_errors_rows(fn: Callable[[], list[BatchRow]]) -> list[BatchRow]:
    try:
        return fn()
    except RunPodError as err:
        raise LaunchError(err.message, err.hint) from err


def cmd_batch(args: argparse.Namespace, console: Console) -> int:
    rows = _user_errors_rows(lambda: asyncio.run(run_batch(args.configs, args, console)))
    for n, line in enumerate(batch_table(rows)):
        console.print(line, style="bold" if n == 0 else None, highlight=False, markup=False)
    return EXIT_OK if all(r.outcome == "completed" for r in rows) else EXIT_FAILED


# -------------------------------------------------------------------------------------- pods


async def pods_command(args: argparse.Namespace, console: Console) -> int:
    from app.core.runpod.endpoints import runpod_endpoints
    from app.core.runpod.orphans import find_orphans, terminate_verified

    key = await runpod_key()
    endpoints = runpod_endpoints()
    with Store() as store:
        async with endpoints.client(key) as client:
            orphans = await find_orphans(client, store)
            if args.terminate:
                await terminate_verified(client, args.terminate, store=store)
                _print(console, f"pod {args.terminate} terminated")
                return EXIT_OK
            if not orphans:
                _print(console, "no pods bill without a running Tunedeck job")
                return EXIT_OK
            header = ("pod", "name", "status", "$/hour", "why it is listed")
            table = [header] + [
                (o.pod.id, o.pod.name, o.pod.status, f"{o.pod.cost_per_hour:.2f}", o.reason)
                for o in orphans
            ]
            widths = [max(len(r[i]) for r in table) for i in range(len(header))]
            for n, row in enumerate(table):
                line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                console.print(line, style="bold" if n == 0 else None, highlight=False, markup=False)
            per_hour = sum(o.pod.cost_per_hour for o in orphans)
            _print(console, f"{len(orphans)} pod(s) costing ${per_hour:.2f} an hour")
            if args.all_orphans:
                for orphan in orphans:
                    if not orphan.made_by_tunedeck:
                        _print(console, f"kept {orphan.pod.id}: not made by Tunedeck")
                        continue
                    await terminate_verified(client, orphan.pod.id, store=store)
                    _print(console, f"pod {orphan.pod.id} terminated")
            else:
                _print(console, "terminate with `tunedeck pods --terminate POD` or --all-orphans")
    return EXIT_OK


def cmd_pods(args: argparse.Namespace, console: Console) -> int:
    return _user_errors(lambda: asyncio.run(pods_command(args, console)))


# ------------------------------------------------------------------------------- registration


def add_commands(sub: Any) -> dict[str, Callable[[argparse.Namespace, Console], int]]:
    """Add ``batch`` and ``pods`` to the CLI's subparsers; their handlers by name."""
    batch = sub.add_parser("batch", help="run several configs; print a table of the outcomes")
    batch.add_argument("configs", type=Path, nargs="+", help="run config JSON files")
    batch.add_argument("--parallel", type=int, default=1, help="runs at once (default 1)")
    batch.add_argument("--target", choices=("local", "runpod"), default="local")
    pods = sub.add_parser("pods", help="list RunPod pods no running job accounts for")
    pods.add_argument("--terminate", metavar="POD", help="terminate this pod")
    pods.add_argument(
        "--all-orphans", action="store_true", help="terminate every listed pod Tunedeck made"
    )
    return {"batch": cmd_batch, "pods": cmd_pods}


__all__ = ["EXIT_USER_ERROR", "add_commands", "cmd_resume_runpod", "cmd_run_runpod", "runpod_key"]
