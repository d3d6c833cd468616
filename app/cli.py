"""The headless command line: ``tunedeck run | resume | jobs | export | plan | setup-training``.

``tunedeck run CONFIG.json`` goes the same way as Launch in the GUI: a receiver on 127.0.0.1,
a job in the store, the trainer as a subprocess with the contract's environment. It shows a
progress bar (plain lines when stdout is not a terminal), prints alerts as they come, and ends
with a summary and the trainer's exit status. Ctrl-C asks the trainer to stop cleanly (it saves
a checkpoint); a second Ctrl-C stops it at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.core.credentials import CredentialStore, read_secret
from app.core.ingest import IngestEvent, Ingestor
from app.core.jobs import STATUSES, Job, JobNotFound, format_duration
from app.core.launcher import LaunchError, ReceiverAddress, create_job_for, start_job
from app.core.launcher_local import DEFAULT_GRACE_S, LocalLauncher
from app.core.metrics_csv import JobRows, write_metrics_csv
from app.core.notifications import format_alert
from app.core.receiver import ReceiverServer
from app.core.store import Store, StoreError
from app.core.tokens import new_api_key
from app.core.trainer_python import launch_python
from trainer.config import ConfigError, RunConfig, load_config

EXIT_OK, EXIT_BUG, EXIT_USER_ERROR = 0, 1, 2
PLAIN_EVERY_S = 5.0  # a plain progress line at most this often (plus the first and the last)
PLAN_JOIN_S = 30.0  # a Hub model's shapes may take seconds to read; never hold the exit longer


def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds, always_hours=True)


class RunDisplay:
    """What ``tunedeck run`` shows: a rich progress bar on a terminal, plain lines elsewhere."""

    def __init__(self, job: Job, console: Console, *, verbose: bool = False) -> None:
        self.job = job
        self.console = console
        self.verbose = verbose
        self.fancy = console.is_terminal
        self.total = job.total_steps
        self.step = 0
        self.loss: float | None = None
        self.first_step_at: float | None = None
        self.first_step = 0
        self._last_plain = 0.0
        self._shown_step = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.suffix: Callable[[], str] | None = None  # a cloud run's phase and dollars

    def __enter__(self) -> RunDisplay:
        if self.fancy:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.job.name, total=self.total, loss="-", extra=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: IngestEvent) -> None:
        if event.job_id != self.job.id:
            return
        if event.kind == "metrics":
            self._metrics(event.points)
        elif event.kind == "alert" and event.alert is not None:
            self._alert(event.alert)

    def output(self, job_id: str, line: str) -> None:
        if self.verbose and job_id == self.job.id:
            self.console.print(f"[dim]│ {line}[/dim]", markup=True, highlight=False)

    def _metrics(self, points: Sequence[dict[str, Any]]) -> None:
        for point in points:
            step = int(point["step"])
            if step >= self.step:
                self.step = step
                if point.get("train_loss") is not None:
                    self.loss = float(point["train_loss"])
        if self.first_step_at is None:
            # the rate is measured from the end of the first batch: its points arrive at once
            self.first_step_at, self.first_step = time.monotonic(), self.step
        self._show()

    def _alert(self, alert: dict[str, Any]) -> None:
        if alert.get("total_steps"):
            self.total = int(alert["total_steps"])
        note = format_alert(alert, job_label=self.job.name)
        self.console.print(
            f"[alert] {note.title}. {note.body}".rstrip(), highlight=False, markup=False
        )
        self._show(force=True)

    def eta_s(self) -> float | None:
        if not self.total or self.first_step_at is None or self.step <= self.first_step:
            return None
        rate = (self.step - self.first_step) / (time.monotonic() - self.first_step_at)
        return (self.total - self.step) / rate if rate > 0 else None

    def _extra(self) -> str:
        return self.suffix() if self.suffix is not None else ""

    def _show(self, force: bool = False) -> None:
        loss = "-" if self.loss is None else f"{self.loss:.4f}"
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=self.step, total=self.total, loss=loss, extra=self._extra()
            )
            return
        now = time.monotonic()
        last = self.total is not None and self.step >= self.total
        due = self._shown_step == 0 or last or force or now - self._last_plain >= PLAIN_EVERY_S
        if not due or self.step in (0, self._shown_step):
            return
        self._last_plain, self._shown_step = now, self.step
        total = f"/{self.total}" if self.total else ""
        self.console.print(
            f"step {self.step}{total}  loss {loss}  eta {_fmt_duration(self.eta_s())}"
            + (f"  {self._extra()}" if self.suffix else ""),
            highlight=False,
            markup=False,
        )


def summary_lines(job: Job) -> list[str]:
    duration = None
    if job.started_at is not None:
        duration = (job.ended_at or time.time()) - job.started_at
    total = f"/{job.total_steps}" if job.total_steps else ""
    loss = "-" if job.last_loss is None else f"{job.last_loss:.4f}"
    lines = [
        f"job {job.id} ({job.name}): {job.status}",
        f"  steps {job.current_step or 0}{total} · final loss {loss} · "
        f"trained {_fmt_duration(duration)} · exit status {job.exit_code}",
        f"  output {job.output_dir}",
        f"  log    {job.log_path}",
    ]
    if job.error and job.status != "completed":
        lines.append("  error:")
        lines += [f"    {line}" for line in job.error.splitlines()]
    return lines


class RunSession:
    """One headless run: receiver, job, trainer, display, Ctrl-C handling."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.interrupts = 0
        self.cancelling: asyncio.Task[None] | None = None
        self.killing: asyncio.Task[None] | None = None

    async def run(self, cfg: RunConfig | None, resume_id: str | None = None) -> int:
        store = Store()
        ingestor = Ingestor(store)
        api_key = new_api_key()  # this run's own; nothing else talks to this receiver
        server = ReceiverServer(
            ingestor, store, host=self.args.host, port=self.args.port, api_key=api_key
        )
        await server.start()
        launcher = LocalLauncher(
            store,
            ingestor,
            receiver=ReceiverAddress(server.url, api_key),
            # --python, else the environment Settings or `setup-training` recorded
            python=launch_python(self.args.python),
            base_dir=Path.cwd(),
            # the keyring's Hub token, else the user's HF_TOKEN (contract_env), as in the GUI
            hf_token_source=lambda: read_secret(CredentialStore(), "hf_token"),
        )
        planning: threading.Thread | None = None
        try:
            if resume_id is not None:
                job = store.find_job(resume_id)
            else:
                assert cfg is not None
                job = create_job_for(store, cfg)
            with RunDisplay(job, self.console, verbose=self.args.verbose) as display:
                launcher.on_output = display.output
                ingestor.subscribe(display.event)
                if resume_id is not None:
                    job = await launcher.resume(job.id)
                else:
                    assert cfg is not None
                    planning = await start_job(store, ingestor, launcher, job, cfg)
                job = store.require_job(job.id)
                self.console.print(
                    f"tunedeck: job {job.id} · {job.method} on {job.model} · receiver "
                    f"{server.url}\ntunedeck: trainer log {job.log_path} (Ctrl-C stops cleanly)",
                    highlight=False,
                    markup=False,
                )
                self._catch_interrupts(launcher, job.id)
                code = await launcher.wait(job.id)
                if self.cancelling is not None:
                    await self.cancelling
            job = store.require_job(job.id)
            for line in summary_lines(job):
                self.console.print(line, highlight=False, markup=False)
            return code if code is not None else EXIT_BUG
        finally:
            self._release_interrupts()
            await launcher.close()
            await server.stop()
            if planning is not None:  # the estimate is stored beside the job, then the store shut
                await asyncio.to_thread(planning.join, PLAN_JOIN_S)
            store.close()

    def _catch_interrupts(self, launcher: LocalLauncher, job_id: str) -> None:
        loop = asyncio.get_running_loop()

        def interrupted() -> None:
            self.interrupts += 1
            if self.interrupts == 1:
                self.console.print(
                    "tunedeck: stopping; the trainer saves a checkpoint (Ctrl-C again to stop "
                    "it at once)",
                    highlight=False,
                    markup=False,
                )
                self.cancelling = loop.create_task(launcher.cancel(job_id, self.args.grace))
            else:
                self.console.print("tunedeck: killing the trainer", highlight=False, markup=False)
                self.killing = loop.create_task(launcher.cancel(job_id, 0))

        try:
            loop.add_signal_handler(signal.SIGINT, interrupted)
            loop.add_signal_handler(signal.SIGTERM, interrupted)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises instead
            pass

    def _release_interrupts(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


# ----------------------------------------------------------------------------- subcommands


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    if args.target == "runpod":
        from app.cli_runpod import cmd_run_runpod

        return cmd_run_runpod(args, console)
    cfg = load_config(args.config)
    return asyncio.run(RunSession(args, console).run(cfg))


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    with Store() as store:
        target = store.find_job(args.job).target
    if target == "runpod":  # on a new pod, through the RunPod launcher
        from app.cli_runpod import cmd_resume_runpod

        return cmd_resume_runpod(args, console)
    return asyncio.run(RunSession(args, console).run(None, resume_id=args.job))


def cmd_jobs(args: argparse.Namespace, console: Console) -> int:
    with Store() as store:
        jobs = store.list_jobs(search=args.search, status=args.status)[: args.limit]
    if not jobs:
        console.print("no jobs", highlight=False, markup=False)
        return EXIT_OK
    header = ("id", "name", "method", "model", "where", "status", "created", "steps", "loss")
    rows = [header]
    for job in jobs:
        total = f"/{job.total_steps}" if job.total_steps else ""
        rows.append(
            (
                job.id,
                job.name,
                job.method,
                job.model,
                job.target,
                job.status,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at)),
                f"{job.current_step or 0}{total}",
                "-" if job.last_loss is None else f"{job.last_loss:.4f}",
            )
        )
    # plain aligned columns: whole ids and names at any width, in a terminal or a pipe
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        console.print(line, style="bold" if n == 0 else None, highlight=False, markup=False)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    with Store() as store:
        job = store.find_job(args.job)
        rows = store.metrics(job.id)
        alerts = store.alerts(job.id) if args.json else []
    with contextlib.ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.output:
            out = stack.enter_context(Path(args.output).open("w", encoding="utf-8", newline=""))
        if args.json:
            json.dump({"job_id": job.id, "metrics": rows, "alerts": alerts}, out, indent=2)
            out.write("\n")
        else:
            write_metrics_csv([JobRows(job.id, job.name, rows)], out)
    if args.output:
        console.print(f"wrote {len(rows)} points of job {job.id} to {args.output}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunedeck", description="Tunedeck without a screen.")
    from app.version import version_line

    p.add_argument("--version", action="version", version=version_line("tunedeck"))
    sub = p.add_subparsers(dest="command", required=True)

    def launch_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--port", type=int, default=0, help="receiver port (default: any free)")
        sp.add_argument("--host", default="127.0.0.1", help="receiver address (default: loopback)")
        sp.add_argument("--python", default=None, help="Python that runs the trainer")
        sp.add_argument(
            "--grace",
            type=float,
            default=DEFAULT_GRACE_S,
            help="seconds a cancelled trainer gets to save a checkpoint before it is killed",
        )
        sp.add_argument("-v", "--verbose", action="store_true", help="show the trainer's output")

    run = sub.add_parser("run", help="train as CONFIG says, with a progress bar")
    run.add_argument("config", type=Path, help="run config JSON (see `python -m trainer schema`)")
    launch_options(run)
    run.add_argument(
        "--target", choices=("local", "runpod"), default="local", help="where to train"
    )
    resume = sub.add_parser("resume", help="continue a cancelled or failed job from its checkpoint")
    resume.add_argument("job", help="job id (or its first characters)")
    launch_options(resume)
    jobs = sub.add_parser("jobs", help="list past jobs, newest first")
    jobs.add_argument("--status", choices=STATUSES)
    jobs.add_argument("--search", help="text in the name, model, method or id")
    jobs.add_argument("--limit", type=int, default=50)
    export = sub.add_parser("export", help="write a job's metrics")
    export.add_argument("job", help="job id (or its first characters)")
    kind = export.add_mutually_exclusive_group()
    kind.add_argument("--csv", action="store_true", help="CSV, one row per step (the default)")
    kind.add_argument("--json", action="store_true", help="JSON with the alerts too")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    from app.cli_runpod import add_commands
    from app.cli_setup import add_commands as add_setup_commands

    COMMANDS.update(add_commands(sub))
    COMMANDS.update(add_setup_commands(sub))
    from app.cli_plan import add_commands as add_plan_command

    COMMANDS.update(add_plan_command(sub))
    from app.cli_chat import add_commands as add_chat_command

    COMMANDS.update(add_chat_command(sub))
    from app.cli_export import add_commands as add_export_commands

    COMMANDS.update(add_export_commands(sub))
    return p


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "jobs": cmd_jobs, "export": cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # soft_wrap: a long line stays one line in a log or a pipe instead of breaking at 80 columns
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return COMMANDS[args.command](args, console)
    except ConfigError as e:
        for line in e.problems:
            err.print(f"error: {e.source + ': ' if e.source else ''}{line}", markup=False)
        return EXIT_USER_ERROR
    except (LaunchError, StoreError, JobNotFound) as e:
        err.print(f"error: {e}", markup=False)
        if getattr(e, "hint", ""):
            err.print(f"hint: {e.hint}", markup=False)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
