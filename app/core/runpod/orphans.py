"""Pods that bill without a job to show for it, and terminating a pod for certain.

``terminate_verified`` is the one way Tunedeck ends a pod: DELETE, then ask RunPod again until
it says the pod is gone (or no longer knows it), and write the outcome into the store's
``cloud_resources`` row. ``find_orphans`` lists the pods on the account that the store does not
account for (a pod from a crashed create, another install, a deleted job) or that belong to a
job that has ended: each bills by the hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.core.runpod.errors import RunPodError, RunPodNotFound
from app.core.runpod.models import Pod
from app.core.store import CloudResource, Store

log = logging.getLogger(__name__)

PROVIDER = "runpod"
POD_NAME_PREFIX = "tunedeck-"
VERIFY_TRIES = 10


class PodApi(Protocol):
    async def get_pod(self, pod_id: str) -> Pod: ...

    async def find_pods(self, name: str | None = None) -> list[Pod]: ...

    async def terminate_pod(self, pod_id: str) -> None: ...


def pod_name(job_id: str) -> str:
    """The name a job's pod is created with: how a create that failed is found again."""
    return f"{POD_NAME_PREFIX}{job_id}"


class TerminateFailed(RunPodError):
    """RunPod still reports the pod after DELETE: it may still bill."""


async def terminate_verified(
    client: PodApi,
    pod_id: str,
    *,
    store: Store | None = None,
    resource: CloudResource | None = None,
    verify_interval_s: float = 1.0,
) -> None:
    """Terminate a pod and confirm with RunPod that it is gone; record it in the store.

    Raises TerminateFailed when RunPod still lists it after ``VERIFY_TRIES`` checks.
    """
    status = "terminating"
    for attempt in range(VERIFY_TRIES):
        if attempt == 0 or attempt % 3 == 0:
            await client.terminate_pod(pod_id)  # a 404 is no error: already gone
        try:
            pod = await client.get_pod(pod_id)
        except RunPodNotFound:
            status = "terminated"
            break
        if pod.is_gone:
            status = "terminated"
            break
        await asyncio.sleep(verify_interval_s)
    if store is not None:
        for row in [resource] if resource is not None else _rows_of(store, pod_id):
            if row is not None:
                store.update_resource(
                    row.id,
                    status=status,
                    terminated_at=time.time() if status == "terminated" else None,
                )
    if status != "terminated":
        raise TerminateFailed(
            f"RunPod still reports pod {pod_id} after it was told to terminate it",
            "Check https://www.runpod.io/console/pods and terminate it there; "
            "`tunedeck pods` lists it too.",
        )
    log.info("pod %s terminated", pod_id)


def _rows_of(store: Store, pod_id: str) -> list[CloudResource]:
    return [r for r in store.list_resources(provider=PROVIDER) if r.resource_id == pod_id]


@dataclass(frozen=True)
class Orphan:
    pod: Pod
    reason: str
    made_by_tunedeck: bool  # named tunedeck-<job id>; other pods on the account are only listed


def orphans_of(pods: Sequence[Pod], store: Store) -> list[Orphan]:
    """The live pods among ``pods`` that no running job of this store accounts for."""
    rows = {r.resource_id: r for r in store.list_resources(provider=PROVIDER) if r.resource_id}
    out: list[Orphan] = []
    for pod in pods:
        if pod.is_gone:
            continue
        ours = pod.name.startswith(POD_NAME_PREFIX)
        row = rows.get(pod.id)
        job_id = row.job_id if row is not None else None
        if job_id is None and ours:
            job_id = pod.name[len(POD_NAME_PREFIX) :]
        job = store.get_job(job_id) if job_id else None
        if job is not None and not job.is_final:
            continue  # a run being followed (here or by `tunedeck run`)
        if row is None and job is None:
            reason = "not made by this Tunedeck" if not ours else "its job is not in the store"
        elif job is None:
            reason = "its job was deleted"
        else:
            reason = f"its job {job.id} has {job.status}"
        out.append(Orphan(pod, reason, ours))
    return out


async def find_orphans(client: PodApi, store: Store) -> list[Orphan]:
    return orphans_of(await client.find_pods(), store)
