"""Runs a job on a RunPod pod and never leaves the pod billing (DESIGN.md §6).

The path of one job, each step a phase with its time and money recorded in the store:

1. provisioning: the pod is written into ``cloud_resources`` BEFORE RunPod is asked to create
   it (status "creating"); the pod runs the bootstrap agent with a fresh random token. The
   user's RunPod key never goes into the pod; the Hugging Face token only when the run reads
   from or pushes to the Hub. A create that errors or times out is followed by a lookup by
   name, because RunPod may have made the pod anyway: what is found is terminated.
2. installing: once the pod runs and its agent answers through RunPod's proxy, the trainer
   bundle, the config and a local dataset are uploaded (chunked, resumable, checksummed) and
   the trainer is started.
3. training: the agent's event log is polled every ``runpod.poll_interval_s`` and fed to the
   ``Ingestor`` (``EventFeed``: once per line, the last seq stored, so a restart continues from
   it). The budget (warning at 80%, stop at 100%), the hard runtime cap and the trainer's
   silence are watched here.
4. collecting: after the final alert, the artifacts are downloaded into the job's output
   folder and verified, the agent is told, and
5. terminated: the pod is terminated and RunPod is asked again until it confirms.

The pod is also terminated on any failure, on cancel (after the checkpoint is downloaded), at
the budget, at max runtime and after too long a silence. If the app vanishes, the agent on the
pod terminates its own pod after the grace time (pod_agent.py).

``resume`` continues a cancelled or failed job as the same job on a NEW pod: the newest complete
checkpoint that came home is uploaded as ``checkpoint.tar.gz`` and unpacked into the run's
output folder on the pod before the trainer starts (``resume_from_checkpoint: latest``). Each pod
has its own ``cloud_resources`` row; the job's one ``cloud_runs`` row moves to the new pod (its
``last_seq`` back to 0: the new pod's event log starts again) and keeps what the earlier pods
cost as one "earlier pods" entry of its phases (``PhaseLedger.continued``); the budget applies
to each pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.core import paths
from app.core.ingest import Ingestor
from app.core.jobs import Job
from app.core.launcher import (
    ExitCallback,
    LaunchError,
    LaunchStatus,
    OutputCallback,
    contract_env,
    stored_resume_config,
    work_dir_of,
)
from app.core.runpod import trainer_bundle
from app.core.runpod.agent_client import AgentClient, AgentError, AgentUnreachable, sha256_file
from app.core.runpod.client import RunPodClient
from app.core.runpod.cost import PhaseLedger, format_meter
from app.core.runpod.endpoints import RunPodEndpoints, runpod_endpoints
from app.core.runpod.errors import (
    RunPodAuthError,
    RunPodError,
    RunPodNoStock,
    RunPodQuota,
    RunPodRateLimited,
    RunPodRejected,
    RunPodUnavailable,
)
from app.core.runpod.models import Pod, PodRequest
from app.core.runpod.orphans import PROVIDER, terminate_verified
from app.core.runpod.pod_setup import (
    AGENT_PORT,
    dataset_upload_name,
    inside,
    local_dataset,
    pod_request,
    talks_to_hub,
    write_private,
)
from app.core.runpod.poller import EventFeed, unread_metric_lines
from app.core.runpod.resume import (
    CHECKPOINT_UPLOAD,
    checkpoint_to_resume,
    keep_event_log,
    pack_checkpoint,
)
from app.core.runpod.run_state import CloudJobRun, Timeouts, ledger_of
from app.core.runpod.watch import check_money, limits_reached, refuse_spent_budget
from app.core.store import Store
from app.core.tokens import hash_token, new_job_token
from trainer.config import ConfigError, RunConfig, parse_config
from trainer.events import EVENT_LOG_NAME

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
POD_CONFIG_NAME = "pod-config.json"  # what the pod gets: the config without its runpod section
ERROR_TAIL_LINES = 15
LOG_NAME = "trainer.log"
TOKEN_NAME = "agent.token"  # the agent's token, 0600, for reattaching after a restart
PhaseCallback = Callable[[str, str], None]  # job_id, one line: phase and dollars


class RunPodLauncher:
    """The ``Launcher`` for target "runpod"."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor | None,
        client: RunPodClient,
        *,
        endpoints: RunPodEndpoints | None = None,
        base_dir: Path | None = None,
        hf_token_source: Callable[[], str | Awaitable[str | None] | None] | None = None,
        on_output: OutputCallback | None = None,
        on_exit: ExitCallback | None = None,
        on_phase: PhaseCallback | None = None,
        agent_transport: Any = None,
        timeouts: Timeouts | None = None,
        bundle_dir: Path | None = None,
        trainer_python: str | None = None,
    ) -> None:
        self.store = store
        self.ingestor = ingestor or Ingestor(store)
        self.client = client
        self.endpoints = endpoints or runpod_endpoints()
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.hf_token_source = hf_token_source
        self.on_output = on_output
        self.on_exit = on_exit
        self.on_phase = on_phase
        self.agent_transport = agent_transport
        self.timeouts = timeouts or Timeouts()
        self.bundle_dir = bundle_dir
        self.trainer_python = trainer_python  # whose packages the pod pins (None: this one)
        self._runs: dict[str, CloudJobRun] = {}
        self._resuming: set[str] = set()

    # -- start ---------------------------------------------------------------------------------

    async def start(self, job: Job, cfg: RunConfig) -> None:
        current = self.store.require_job(job.id)
        if current.status != "queued":
            raise LaunchError(
                f"job {job.id} is {current.status}, not queued", "Create a new job to run again."
            )
        await self._launch(job, cfg, work_dir=self.base_dir)

    async def _launch(
        self,
        job: Job,
        cfg: RunConfig,
        *,
        work_dir: Path,
        carried: PhaseLedger | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        """A new pod for a queued job; ``carried``: the ledger of its earlier pods (a resume),
        ``checkpoint``: the archive the pod continues from."""
        folder = paths.job_dir(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        config_text = cfg.to_json()  # no secrets: they travel in /start's environment
        (folder / CONFIG_NAME).write_text(config_text, encoding="utf-8")
        # the trainer reads nothing of the runpod section; the pod gets what it runs with
        pod_config = cfg.model_dump_json(indent=2, exclude={"runpod"})
        (folder / POD_CONFIG_NAME).write_text(pod_config, encoding="utf-8")
        token = secrets.token_urlsafe(32)
        write_private(folder / TOKEN_NAME, token)
        job_token = new_job_token()
        output_dir = cfg.resolved_output_dir(work_dir)
        self.store.update_job(
            job.id,
            token_hash=hash_token(job_token),
            config_json=config_text,
            log_path=str(folder / LOG_NAME),
            output_dir=str(output_dir),
            exit_code=None,
        )
        now = time.time()
        # written down before RunPod is asked: a pod is never made without a row saying so
        resource = self.store.record_resource(provider=PROVIDER, status="creating", job_id=job.id)
        ledger = PhaseLedger("provisioning", now, None, dict(carried.done) if carried else {})
        # a resumed job's row moves to the new pod, whose event log starts again at seq 1
        self.store.save_cloud_run(
            job.id,
            resource_row=resource.id,
            pod_id=None,
            cost_per_hour=None,
            phase="provisioning",
            phase_started_at=now,
            phases=ledger.phases_json(),
            last_seq=0,
        )
        run = CloudJobRun(job.id, cfg, ledger, EventFeed(self.store, self.ingestor, job.id), token)
        run.resource_row, run.job_token = resource.id, job_token
        run.work_dir, run.checkpoint_archive = work_dir, checkpoint
        pod = await self._create(run, pod_request(job.id, cfg, token))
        run.pod_id = pod.id
        run.ledger.cost_per_hour = pod.cost_per_hour
        self.store.update_resource(
            resource.id, resource_id=pod.id, status="created", cost_per_hour=pod.cost_per_hour
        )
        self.store.save_cloud_run(job.id, pod_id=pod.id, cost_per_hour=pod.cost_per_hour)
        self._say(run, f"pod {pod.id} created ({pod.gpu_count}x {pod.gpu_type_id})")
        self._follow(run, self._drive(run))
        self.ingestor.job_changed(self.store.require_job(job.id))

    async def _create(self, run: CloudJobRun, request: PodRequest) -> Pod:
        assert run.resource_row is not None
        try:
            return await self.client.create_pod(request)
        except (
            RunPodAuthError,
            RunPodNoStock,
            RunPodQuota,
            RunPodRejected,
            RunPodRateLimited,
        ) as err:
            # RunPod refused before making anything: nothing bills
            self._close_unmade(run, "refused")
            raise LaunchError(err.message, _hint(err)) from err
        except (RunPodError, OSError, TimeoutError) as err:
            # the create may have happened anyway (RunPod bills it): look for it by name
            found = await self._terminate_by_name(run, request.name)
            what = f"RunPod did not confirm the pod ({err})"
            if found:
                what += f"; the pod it made anyway ({', '.join(found)}) was found and terminated"
            else:
                self._close_unmade(run, "not created")
            raise LaunchError(what, "Launch the run again in a moment.") from err

    def _close_unmade(self, run: CloudJobRun, status: str) -> None:
        assert run.resource_row is not None
        now = time.time()
        self.store.update_resource(run.resource_row, status=status, terminated_at=now)
        run.ledger.enter("terminated", now)
        self._save_ledger(run)

    async def _terminate_by_name(self, run: CloudJobRun, name: str) -> list[str]:
        try:
            pods = await self.client.find_pods(name=name)
        except RunPodError as err:
            log.error(
                "job %s: cannot look up pod %s after a failed create: %s", run.job_id, name, err
            )
            return []
        ended = []
        for pod in pods:
            if pod.name != name or pod.is_gone:
                continue
            assert run.resource_row is not None
            self.store.update_resource(run.resource_row, resource_id=pod.id, status="created")
            await terminate_verified(
                self.client,
                pod.id,
                store=self.store,
                verify_interval_s=self.timeouts.verify_s,
            )
            ended.append(pod.id)
        if ended:
            run.ledger.enter("terminated", time.time())
            self._save_ledger(run)
        return ended

    # -- the run's life ------------------------------------------------------------------------

    def _follow(self, run: CloudJobRun, work: Any) -> None:
        self._runs[run.job_id] = run
        run.task = asyncio.get_running_loop().create_task(work, name=f"runpod-{run.job_id}")

    async def _drive(self, run: CloudJobRun) -> None:
        """The run from its current phase (a reattached run starts in training or collecting)
        to its pod's end, whatever happens on the way."""
        try:
            if run.ledger.phase == "provisioning":
                await self._wait_until_ready(run)
                if not run.cancel_requested:
                    await self._install(run)
            if run.ledger.phase == "training":
                await self._train(run)
            await self._collect(run)
        except asyncio.CancelledError:
            raise  # the app is closing: the pod runs on; reattach finds it
        except Exception as err:
            await self._fail(run, err)
        else:
            try:
                await self._terminate(run)
            except RunPodError as err:  # the job is over either way; say the pod may not be
                log.error(
                    "job %s: pod %s not confirmed terminated: %s", run.job_id, run.pod_id, err
                )
                self.store.update_job(
                    run.job_id,
                    error=f"pod {run.pod_id} was not confirmed terminated ({err}); "
                    "check `tunedeck pods` or File ▸ Cloud pods…",
                )
            self._close_job(run)
        finally:
            if not (run.task is not None and run.task.cancelled()):
                run.done.set()

    async def _transfer(
        self, run: CloudJobRun, what: str, work: Callable[[], Awaitable[Any]]
    ) -> Any:
        """An upload or download step, tried again while the proxy is unreachable (transfers
        resume where they were cut) until ``timeouts.transfer_retry_s`` has passed."""
        deadline = time.monotonic() + self.timeouts.transfer_retry_s
        while True:
            try:
                return await work()
            except AgentUnreachable as err:
                if time.monotonic() > deadline:
                    raise
                log.warning("job %s: %s interrupted (%s); trying again", run.job_id, what, err)
                await asyncio.sleep(self.timeouts.pod_check_s)

    async def _wait_until_ready(self, run: CloudJobRun) -> None:
        """Until the pod is RUNNING and its agent answers through the proxy."""
        assert run.pod_id is not None
        deadline = time.monotonic() + self.timeouts.provision_s
        while True:
            if run.cancel_requested:
                return
            refuse_spent_budget(run)
            try:
                pod = await self.client.get_pod(run.pod_id)
            except (RunPodUnavailable, RunPodRateLimited) as err:
                if time.monotonic() > deadline:
                    raise
                log.warning("job %s: RunPod did not answer about the pod: %s", run.job_id, err)
                await asyncio.sleep(self.timeouts.pod_check_s)
                continue
            if pod.status in ("ERROR", "EXITED", "TERMINATED"):
                raise LaunchError(
                    f"pod {pod.id} went to {pod.status} before the agent started",
                    "RunPod's pod log may say why (tunedeck pods); try another GPU type.",
                )
            if pod.status == "RUNNING":
                break
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"pod {pod.id} was not running after {self.timeouts.provision_s / 60:.0f} "
                    f"minutes ({pod.status})",
                    "RunPod may be short of that GPU; try another type or the other cloud.",
                )
            await asyncio.sleep(self.timeouts.pod_check_s)
        run.agent = self._agent(run)
        while True:
            if run.cancel_requested:
                return
            refuse_spent_budget(run)
            try:
                await run.agent.health()
                return
            except AgentUnreachable:
                if time.monotonic() > deadline:
                    raise LaunchError(
                        f"the agent on pod {run.pod_id} did not answer through RunPod's proxy",
                        "The image needs python3; see the pod's log on RunPod.",
                    ) from None
                await asyncio.sleep(self.timeouts.pod_check_s)

    def _agent(self, run: CloudJobRun) -> AgentClient:
        assert run.pod_id is not None
        url = self.endpoints.proxy_url(run.pod_id, AGENT_PORT)
        return AgentClient(url, run.token, transport=self.agent_transport)

    async def _install(self, run: CloudJobRun) -> None:
        agent = run.agent
        assert agent is not None
        self._enter(run, "installing")
        folder = paths.job_dir(run.job_id)
        try:
            bundle = await asyncio.to_thread(
                trainer_bundle.build_trainer_bundle, self.trainer_python, cache=self.bundle_dir
            )
        except trainer_bundle.BundleError as err:
            raise LaunchError(str(err), "Fix the training environment, then launch again.") from err
        uploads = [(trainer_bundle.BUNDLE_NAME, bundle.path, "trainer")]
        uploads.append((CONFIG_NAME, folder / POD_CONFIG_NAME, "config"))
        dataset = local_dataset(run.cfg, run.work_dir or self.base_dir)
        if dataset is not None:
            uploads.append((dataset_upload_name(dataset), dataset, "dataset"))
        if run.checkpoint_archive is not None:  # a resume: the agent unpacks it before /start
            uploads.append((CHECKPOINT_UPLOAD, run.checkpoint_archive, "checkpoint"))
        for name, path, what in uploads:
            upload = functools.partial(agent.upload, name, path, self._progress(run, what))
            await self._transfer(run, f"uploading the {what}", upload)
        if run.checkpoint_archive is not None:  # on the pod, verified; the folder stays here
            run.checkpoint_archive.unlink(missing_ok=True)
        job = self.store.require_job(run.job_id)
        assert run.job_token is not None
        # environ={}: the user's own shell HF_TOKEN reaches the pod only through _hf_token's rule
        env = contract_env(
            job,
            token=run.job_token,
            receiver=None,
            cfg=run.cfg,
            hf_token=await self._hf_token(run),
            environ={},
        )
        start = functools.partial(
            agent.start, run.job_id, env, list(bundle.requirements), run.cfg.runpod.gpu_count
        )
        try:
            await self._transfer(run, "starting the trainer", start)
        except AgentError as err:
            if err.error != "started":  # a repeated /start after a lost answer: it did start
                raise
        run.job_token = None
        self._enter(run, "training")

    async def _hf_token(self, run: CloudJobRun) -> str | None:
        """The Hub token goes to the pod only when the run talks to the Hub."""
        if self.hf_token_source is None:
            return None
        if not talks_to_hub(run.cfg, run.work_dir or self.base_dir):
            return None
        token = self.hf_token_source()
        return await token if inspect.isawaitable(token) else token

    async def _train(self, run: CloudJobRun) -> None:
        """Poll the event log until the trainer has ended and every line is in."""
        assert run.agent is not None
        interval = run.cfg.runpod.poll_interval_s
        silence_s = run.cfg.runpod.silence_minutes * 60.0
        last_log_warning = 0.0
        run.training_since = run.training_since or time.monotonic()
        run.last_heard = time.monotonic()
        while True:
            try:
                page = await run.agent.events(after=run.feed.last_seq)
            except AgentUnreachable as err:
                if time.monotonic() - last_log_warning > self.timeouts.unreachable_log_s:
                    log.warning("job %s: the agent is unreachable: %s", run.job_id, err)
                    last_log_warning = time.monotonic()
                page = None
            if page is not None:
                result = run.feed.feed(page.events)
                if page.events:
                    run.last_heard = time.monotonic()
                if result.final_alert is not None:
                    run.final_alert = result.final_alert
                await self._pull_log(run)
                ended = page.phase in ("finished", "failed")
                if ended and page.last_seq <= run.feed.last_seq:
                    self.store.update_job(run.job_id, exit_code=page.exit_code)
                    return
            check_money(run, self.store, self.ingestor, self.timeouts.final_alert_s)
            if limits_reached(run, silence_s, self.timeouts.final_alert_s):
                return
            if run.stop_reason is not None and not run.cancel_sent:
                await self._send_cancel(run)
            await asyncio.sleep(interval)

    async def _pull_log(self, run: CloudJobRun) -> None:
        assert run.agent is not None
        try:
            chunk = await run.agent.log(after=run.log_offset)
        except (AgentUnreachable, AgentError):
            return
        text = chunk.text
        run.log_offset = chunk.next
        if not text:
            return
        path = paths.job_dir(run.job_id) / LOG_NAME
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
        if self.on_output is not None:
            for line in text.splitlines():
                if line.strip():
                    self.on_output(run.job_id, line)

    async def _send_cancel(self, run: CloudJobRun) -> None:
        if run.agent is None:
            return
        try:
            await run.agent.cancel()
        except (AgentUnreachable, AgentError) as err:
            log.warning("job %s: cancel not delivered yet: %s", run.job_id, err)
            return
        run.cancel_sent = True

    async def _collect(self, run: CloudJobRun) -> None:
        """Download and verify what the run left, then tell the agent."""
        agent = run.agent
        if agent is None or run.ledger.phase in ("provisioning",):
            return
        self._enter(run, "collecting")
        output = Path(self.store.require_job(run.job_id).output_dir or self.base_dir)
        # a run that did not complete keeps its checkpoints: they are what a resume starts from
        completed = run.final_alert is not None and run.final_alert.get("type") == "job_completed"
        artifacts = await self._transfer(
            run, "listing the artifacts", lambda: agent.artifacts(checkpoints=not completed)
        )
        for item in artifacts:
            dest = output / item.path
            if not inside(output, dest):
                log.error("job %s: refusing artifact path %r", run.job_id, item.path)
                continue
            if await asyncio.to_thread(_holds, dest, item.size, item.sha256):
                continue  # here already (a resumed run's checkpoint): the pod bills meanwhile
            download = functools.partial(agent.download, item, dest)
            try:
                await self._transfer(run, f"downloading {item.path}", download)
            except AgentError as err:
                if err.error != "checksum_mismatch":
                    raise
                await self._transfer(run, f"downloading {item.path}", download)  # once more
        with contextlib.suppress(AgentUnreachable, AgentError):
            await agent.collected()
        self._say(run, f"{len(artifacts)} artifact file(s) downloaded to {output}")
        # points the polling missed (a stop that outran it): a resume continues after them
        missed = await asyncio.to_thread(
            unread_metric_lines, output / EVENT_LOG_NAME, run.feed.last_seq
        )
        if missed:
            log.info(
                "job %s: %d point(s) read from the downloaded event log", run.job_id, len(missed)
            )
            run.feed.feed(missed)

    async def _terminate(self, run: CloudJobRun) -> None:
        if run.pod_id is None:
            return
        resource = self.store.get_resource(run.resource_row) if run.resource_row else None
        await terminate_verified(
            self.client,
            run.pod_id,
            store=self.store,
            resource=resource,
            verify_interval_s=self.timeouts.verify_s,
        )
        self._enter(run, "terminated")
        if run.agent is not None:
            with contextlib.suppress(Exception):
                await run.agent.aclose()

    async def _fail(self, run: CloudJobRun, err: Exception) -> None:
        message = f"{err} {getattr(err, 'hint', '')}".strip()
        log.error("job %s failed on RunPod: %s", run.job_id, message)
        # what the run left is worth the download even when it failed (a checkpoint)
        if run.agent is not None and run.ledger.phase in ("training", "collecting"):
            try:
                await asyncio.wait_for(self._collect(run), self.timeouts.collect_on_failure_s)
            except Exception as collect_err:
                log.error("job %s: artifacts not collected: %s", run.job_id, collect_err)
        try:
            await self._terminate(run)
        except Exception as term_err:
            message += f" (terminating pod {run.pod_id} failed too: {term_err})"
            log.error("job %s: %s", run.job_id, message)
        job = self.store.get_job(run.job_id)
        if job is not None and not job.is_final:
            self._alert_failed(job, message, "runpod")
            job = self.store.set_status(run.job_id, "failed", message)
            self.ingestor.job_changed(job)
        self._exited(run)

    def _close_job(self, run: CloudJobRun) -> None:
        job = self.store.require_job(run.job_id)
        if not job.is_final:
            if run.cancel_requested and run.final_alert is None:
                job = self.store.set_status(run.job_id, "cancelled", "cancelled before it ran")
            else:
                why = run.stop_reason or (
                    f"the trainer ended (exit code {job.exit_code}) without reporting an "
                    f"outcome. Last lines of its log:\n{self._log_tail(run)}"
                )
                self._alert_failed(job, why, "runpod")
                job = self.store.set_status(run.job_id, "failed", why)
        elif run.stop_reason is not None and job.status == "cancelled":
            job = self.store.update_job(run.job_id, error=f"stopped by Tunedeck: {run.stop_reason}")
        self.ingestor.job_changed(job)
        self._exited(run)

    def _log_tail(self, run: CloudJobRun) -> str:
        try:
            text = (paths.job_dir(run.job_id) / LOG_NAME).read_text("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-ERROR_TAIL_LINES:]) or "(the log is empty)"

    def _alert_failed(self, job: Job, message: str, error_type: str) -> None:
        with contextlib.suppress(Exception):
            self.ingestor.ingest_alert(
                {
                    "type": "job_failed",
                    "job_id": job.id,
                    "user_id": job.user_id,
                    "status": "failed",
                    "current_step": job.current_step,
                    "error_type": error_type,
                    "error_message": message,
                }
            )

    def _exited(self, run: CloudJobRun) -> None:
        if self.on_exit is not None:
            try:
                self.on_exit(
                    run.job_id, 0 if self.store.require_job(run.job_id).status == "completed" else 1
                )
            except Exception:
                log.exception("on_exit failed for job %s", run.job_id)

    # -- phases --------------------------------------------------------------------------------

    def _enter(self, run: CloudJobRun, phase: str) -> None:
        if run.ledger.enter(phase, time.time()):
            self._save_ledger(run)
            self._say(run, format_meter(run.ledger, time.time(), run.cfg.runpod.budget_usd))

    def _save_ledger(self, run: CloudJobRun) -> None:
        self.store.save_cloud_run(
            run.job_id,
            phase=run.ledger.phase,
            phase_started_at=run.ledger.phase_started_at,
            phases=run.ledger.phases_json(),
        )

    def _say(self, run: CloudJobRun, line: str) -> None:
        log.info("job %s: %s", run.job_id, line)
        if self.on_phase is not None:
            try:
                self.on_phase(run.job_id, line)
            except Exception:
                log.exception("on_phase failed for job %s", run.job_id)

    def _progress(self, run: CloudJobRun, what: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if total and (done == total or done % (64 << 20) < (8 << 20)):
                self._say(run, f"uploading the {what}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")

        return report

    def meter(self, job_id: str) -> str | None:
        """The job's phase and money so far, as one line (None: not a cloud job)."""
        ledger = self.ledger(job_id)
        if ledger is None:
            return None
        job = self.store.get_job(job_id)
        budget = None
        if job is not None:
            with contextlib.suppress(ConfigError, ValueError):
                budget = parse_config(job.config()).runpod.budget_usd
        return format_meter(ledger, time.time(), budget)

    def ledger(self, job_id: str) -> PhaseLedger | None:
        run = self._runs.get(job_id)
        if run is not None:
            return run.ledger
        row = self.store.get_cloud_run(job_id)
        return ledger_of(row) if row is not None else None

    # -- control -------------------------------------------------------------------------------

    async def cancel(self, job_id: str, grace_s: float | None = None) -> None:
        """Ask the trainer to stop (it checkpoints); the checkpoint is downloaded and the pod
        terminated. Returns when the pod is gone (or after ``grace_s`` more, forced)."""
        run = self._runs.get(job_id)
        if run is None or run.done.is_set():
            job = self.store.get_job(job_id)
            if job is not None and not job.is_final and await self.reattach(job):
                run = self._runs.get(job_id)
            if run is None or run.done.is_set():
                return
        run.cancel_requested = True
        run.stop("cancelled by the user", grace_s or self.timeouts.final_alert_s)
        if run.ledger.phase == "training":
            await self._send_cancel(run)
        await run.done.wait()

    async def resume(self, job_id: str) -> Job:
        """Continue a cancelled or failed cloud job as the same job on a new pod, from the newest
        complete checkpoint its earlier pod sent home (see the module's docstring)."""
        job = self.store.require_job(job_id)
        if job.target != PROVIDER:
            raise LaunchError(f"job {job_id} ran on {job.target}, not on RunPod", "")
        if not job.is_final:
            raise LaunchError(f"job {job_id} is {job.status}", "Only a finished job resumes.")
        if job.status == "completed":  # its folder may hold a checkpoint of an earlier stop
            raise LaunchError(
                f"job {job_id} completed: there is nothing to continue",
                "Duplicate it as a new run to train again.",
            )
        running = self._runs.get(job_id)
        if job_id in self._resuming or (running is not None and not running.done.is_set()):
            raise LaunchError(
                f"job {job_id}'s pod is still being collected or terminated",
                "Wait until its pod is terminated, then resume.",
            )
        pods = self.store.list_resources(provider=PROVIDER, job_id=job_id)
        live = [r for r in pods if r.resource_id is not None and r.terminated_at is None]
        if live:
            raise LaunchError(
                f"job {job_id}'s pod {live[0].resource_id} is not confirmed terminated",
                "Terminate it from File ▸ Cloud pods… (or `tunedeck pods`), then resume.",
            )
        cfg = stored_resume_config(job)
        work_dir = work_dir_of(job, cfg, self.base_dir)  # where its checkpoints came home
        output = cfg.resolved_output_dir(work_dir)
        checkpoint = checkpoint_to_resume(job_id, output)
        self._resuming.add(job_id)
        try:
            archive = paths.job_dir(job_id) / CHECKPOINT_UPLOAD
            try:
                await asyncio.to_thread(pack_checkpoint, checkpoint, archive)
            except OSError as err:  # the job stays as it was: nothing was reopened or made
                raise LaunchError(
                    f"cannot pack {checkpoint} into {archive} for the upload: {err}",
                    "Free disk space there (the archive is about the checkpoint's size), "
                    "then resume.",
                ) from err
            row = self.store.get_cloud_run(job_id)
            ended = max((r.terminated_at for r in pods if r.terminated_at), default=None)
            carried = ledger_of(row).continued(time.time(), ended) if row is not None else None
            keep_event_log(output, row.pod_id if row is not None else None)
            self.store.reopen_job(job_id)
            job = self.store.update_job(job_id, config_json=cfg.to_json())
            log.info("job %s: resuming from %s on a new pod", job_id, checkpoint)
            try:
                await self._launch(job, cfg, work_dir=work_dir, carried=carried, checkpoint=archive)
            except Exception as err:  # never left queued: failed with the reason, resumable
                hint = err.hint if isinstance(err, LaunchError) else ""
                failed = self.store.set_status(job_id, "failed", f"{err} {hint}".strip())
                self.ingestor.job_changed(failed)
                raise
        finally:
            self._resuming.discard(job_id)
        return self.store.require_job(job_id)

    def status(self, job_id: str) -> LaunchStatus:
        run = self._runs.get(job_id)
        if run is not None:
            return LaunchStatus(job_id, not run.done.is_set())
        row = self.store.get_cloud_run(job_id)
        return LaunchStatus(job_id, row is not None and row.phase != "terminated")

    async def wait(self, job_id: str) -> int | None:
        run = self._runs.get(job_id)
        if run is None:
            return None
        await run.done.wait()
        return 0 if self.store.require_job(job_id).status == "completed" else 1

    # -- after a restart -----------------------------------------------------------------------

    async def reattach(self, job: Job) -> bool:
        """Follow a cloud job again after the app restarted, from the stored seq (True), or
        close it (and its pod) with the reason (False)."""
        job = self.store.get_job(job.id) or job
        row = self.store.get_cloud_run(job.id)
        if job.id in self._runs and not self._runs[job.id].done.is_set():
            return True
        if row is None or row.phase == "terminated":
            return False
        try:
            cfg = parse_config(job.config())
            token = (paths.job_dir(job.id) / TOKEN_NAME).read_text(encoding="utf-8").strip()
        except (ConfigError, ValueError, OSError) as err:
            cfg, token = None, ""
            log.error("job %s: cannot reattach: %s", job.id, err)
        ledger = ledger_of(row)
        feed = EventFeed(self.store, self.ingestor, job.id, row.last_seq)
        run = CloudJobRun(job.id, cfg or parse_config({}), ledger, feed, token)
        run.pod_id, run.resource_row = row.pod_id, row.resource_row
        if run.pod_id is None:
            if not job.is_final:
                job = self.store.set_status(
                    job.id, "failed", "Tunedeck closed while the pod was being created"
                )
                self.ingestor.job_changed(job)
            return False
        try:
            pod = await self.client.get_pod(run.pod_id)
            gone = pod.is_gone
        except RunPodError as err:
            gone = getattr(err, "status", None) == 404
            if not gone:
                raise
        usable = cfg is not None and token and not job.is_final and not gone
        if usable and ledger.phase in ("training", "collecting"):
            run.agent = self._agent(run)
            self._follow(run, self._drive(run))
            return True
        # not followable (closed before training started, or the job is over): end the pod
        why = "Tunedeck closed before the trainer started on the pod"
        if gone:
            why = "the pod was terminated while Tunedeck was closed"
        self._runs[job.id] = run
        if not gone:
            await self._fail(run, LaunchError(why, "Launch the run again."))
        else:
            resource = self.store.get_resource(run.resource_row) if run.resource_row else None
            if resource is not None and resource.terminated_at is None:
                self.store.update_resource(
                    resource.id, status="terminated", terminated_at=time.time()
                )
            run.ledger.enter("terminated", time.time())
            self._save_ledger(run)
            if not job.is_final:
                job = self.store.set_status(job.id, "failed", why)
                self.ingestor.job_changed(job)
        run.done.set()
        return False

    async def reattach_all(self) -> list[str]:
        running = []
        for job in self.store.list_jobs():
            if job.target == "runpod" and not job.is_final:
                try:
                    if await self.reattach(job):
                        running.append(job.id)
                except RunPodError as err:
                    log.error("job %s: cannot reattach: %s", job.id, err)
        return running

    async def close(self) -> None:
        """Stop following (pods keep running; ``reattach`` finds them again)."""
        for run in list(self._runs.values()):
            if run.task is not None and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
            if run.agent is not None:
                with contextlib.suppress(Exception):
                    await run.agent.aclose()
        self._runs.clear()


def _holds(path: Path, size: int, sha256: str) -> bool:
    """Whether ``path`` already holds exactly that content."""
    try:
        return path.stat().st_size == size and sha256_file(path) == sha256
    except OSError:
        return False


def _hint(err: RunPodError) -> str:
    if isinstance(err, RunPodNoStock) and err.alternatives:
        names = ", ".join(gpu.label() for gpu in err.alternatives)
        return f"{err.hint} In stock now: {names} (set runpod.gpu_type).".strip()
    return err.hint
