"""An async client for RunPod's REST API v2 (DESIGN.md §6), on httpx.

The API key comes from the caller (the app reads it from the keyring); it travels only in the
Authorization header and is never logged or put in a message. Failures become the typed errors
of ``errors.py``. Retries: a 429 waits for Retry-After (capped) on every call, since RunPod did
nothing; a 5xx or a timeout is retried with backoff only where repeating is safe (reads, delete,
stop/terminate) and never for a create, which may have made a billing pod: its caller looks the
pod up by name instead (``RunPodUnavailable.maybe_done``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from app.core.runpod.catalog import similar_in_stock
from app.core.runpod.errors import (
    RunPodError,
    RunPodNoStock,
    RunPodRateLimited,
    RunPodUnavailable,
)
from app.core.runpod.models import GpuType, Pod, PodAction, PodBilling, PodRequest
from app.core.runpod.problems import Problem, error_for, is_no_stock

log = logging.getLogger(__name__)

RUNPOD_API_BASE = "https://api.runpod.io"
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is reported to the caller instead of waited out
BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
LOG_WINDOW_S = 3.0  # the log endpoint streams forever: read what arrives within this window
_SAFE_ACTIONS = frozenset({"stop", "terminate"})

Sleep = Callable[[float], Awaitable[object]]


class RunPodClient:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = RUNPOD_API_BASE,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        sleep: Sleep = asyncio.sleep,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
    ) -> None:
        key = api_key.strip()
        if not key:
            raise ValueError("a RunPod API key is needed")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
        )
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._sleep = sleep
        self._max_retry_after_s = max_retry_after_s

    def __repr__(self) -> str:  # the default would not show the key either; keep it so
        return f"RunPodClient(base_url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> RunPodClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- pods ------------------------------------------------------------------------------

    async def create_pod(self, request: PodRequest) -> Pod:
        """Create a pod (201). Never retried on a 5xx or timeout: see the module docstring."""
        action = f"create pod {request.name}"
        try:
            response = await self._call(
                "POST", "/v2/pods", action, safe=False, body=request.to_json()
            )
        except RunPodNoStock as error:
            raise await self._with_alternatives(error, request) from None
        return Pod.from_json(response.json())

    async def get_pod(self, pod_id: str) -> Pod:
        """The pod; ``RunPodNotFound`` once it is terminated (RunPod forgets it)."""
        response = await self._call("GET", f"/v2/pods/{pod_id}", f"read pod {pod_id}")
        return Pod.from_json(response.json())

    async def find_pods(self, name: str | None = None) -> list[Pod]:
        """Every pod on the account, or those with exactly this name."""
        response = await self._call("GET", "/v2/pods", "list pods")
        pods = [Pod.from_json(body) for body in response.json().get("pods", [])]
        return [pod for pod in pods if name is None or pod.name == name]

    async def terminate_pod(self, pod_id: str) -> None:
        """Terminate (delete) the pod. A pod RunPod no longer knows is gone already: no error."""
        await self._call(
            "DELETE", f"/v2/pods/{pod_id}", f"terminate pod {pod_id}", ok_statuses=(204, 404)
        )

    async def pod_action(self, pod_id: str, action: PodAction) -> Pod | None:
        """start/stop/restart answer the updated pod; terminate answers nothing (None)."""
        response = await self._call(
            "POST",
            f"/v2/pods/{pod_id}/action",
            f"{action} pod {pod_id}",
            safe=action in _SAFE_ACTIONS,
            body={"action": action},
        )
        return None if response.status_code == 204 else Pod.from_json(response.json())

    async def pod_logs(self, pod_id: str, *, tail: int = 100) -> list[str]:
        """The container's last ``tail`` log lines (the endpoint is a server-sent-event stream
        that stays open: this reads what arrives within a short window)."""
        lines: list[str] = []
        response = await self._call(
            "GET",
            f"/v2/pods/{pod_id}/logs",
            f"read the log of pod {pod_id}",
            params={"tail": str(tail), "source": "container"},
            stream=True,
        )
        try:
            async with asyncio.timeout(min(LOG_WINDOW_S, self._timeout_s)):
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        lines.append(_log_line(line[5:].strip()))
        except (TimeoutError, httpx.ReadTimeout):
            pass
        finally:
            await response.aclose()
        return lines

    # -- catalog and billing ---------------------------------------------------------------

    async def gpu_types(self, *, gpu_count: int = 1, cloud: str | None = None) -> list[GpuType]:
        """GPU types with price per cloud, memory, max count and pod stock for ``gpu_count``."""
        params = {"include": "AVAILABILITY", "product": "POD", "count": str(gpu_count)}
        if cloud:
            params["cloud"] = cloud
        response = await self._call("GET", "/v2/catalog/gpus", "list GPU types", params=params)
        return [GpuType.from_json(body) for body in response.json().get("gpus", [])]

    async def pod_billing(
        self,
        pod_id: str | None = None,
        *,
        start_time: str | None = None,
        end_time: str | None = None,
        bucket_size: str = "day",
    ) -> PodBilling:
        """What RunPod billed for pods (one pod with ``pod_id``); times are RFC 3339."""
        params = {"bucketSize": bucket_size}
        for key, value in (("podId", pod_id), ("startTime", start_time), ("endTime", end_time)):
            if value:
                params[key] = value
        response = await self._call("GET", "/v2/billing/pods", "read pod billing", params=params)
        return PodBilling.from_json(response.json())

    # -- the one request loop ----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        action: str,
        *,
        safe: bool = True,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        ok_statuses: tuple[int, ...] = (200, 201, 204),
        stream: bool = False,
    ) -> httpx.Response:
        last_wait: float | None = None
        for attempt in range(self._max_retries + 1):
            final = attempt == self._max_retries
            try:
                request = self._http.build_request(
                    method,
                    path,
                    params=params,
                    content=json.dumps(body).encode() if body is not None else None,
                    headers={"Content-Type": "application/json"} if body is not None else None,
                )
                response = await self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # nothing reached RunPod: repeating is safe even for a create
                if final:
                    raise self._unreachable(action, exc, maybe_done=False) from None
                await self._backoff(attempt, action, type(exc).__name__)
                continue
            except httpx.TransportError as exc:
                if final or not safe:
                    raise self._unreachable(action, exc, maybe_done=not safe) from None
                await self._backoff(attempt, action, type(exc).__name__)
                continue
            if response.status_code in ok_statuses:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            problem = Problem.of(response)
            if response.status_code == 429:
                last_wait = _retry_after(response)
                if final or last_wait > self._max_retry_after_s:
                    raise self._rate_limited(action, problem, last_wait)
                log.info("RunPod is limiting requests; waiting %.0f s to %s", last_wait, action)
                await self._sleep(last_wait)
                continue
            if response.status_code >= 500 and safe and not final:
                await self._backoff(attempt, action, f"HTTP {response.status_code}")
                continue
            if is_no_stock(problem):  # create_pod rewords it with alternatives from the catalog
                raise RunPodNoStock(
                    f"RunPod has no free GPU of that type to {action} right now "
                    f"(RunPod said: {problem.detail}).",
                    "Try again later, or use another GPU type.",
                    **problem.kwargs(),
                )
            error = error_for(problem, action=action)
            if isinstance(error, RunPodUnavailable):
                error.maybe_done = not safe
            raise error
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _backoff(self, attempt: int, action: str, why: str) -> None:
        delay = min(BACKOFF_S * 2**attempt, MAX_BACKOFF_S)
        log.info("RunPod did not answer (%s); retrying to %s in %.1f s", why, action, delay)
        await self._sleep(delay)

    def _unreachable(self, action: str, exc: Exception, *, maybe_done: bool) -> RunPodUnavailable:
        timed_out = isinstance(exc, httpx.TimeoutException)
        why = f"no answer within {self._timeout_s:g} s" if timed_out else type(exc).__name__
        hint = (
            "The pod may have been created anyway; Tunedeck looks it up by name before trying "
            "again."
            if maybe_done
            else "Check your internet connection and try again."
        )
        return RunPodUnavailable(
            f"Could not reach RunPod to {action} ({why}).", hint, maybe_done=maybe_done
        )

    def _rate_limited(self, action: str, problem: Problem, wait: float) -> RunPodRateLimited:
        return RunPodRateLimited(
            f"RunPod is limiting requests (429) and did not allow this one to {action}.",
            f"Try again in {wait:.0f} s.",
            retry_after_s=wait,
            title=problem.title,
            errors=problem.errors,
        )

    async def _with_alternatives(self, error: RunPodNoStock, request: PodRequest) -> RunPodError:
        """Name types in stock at a similar price; the catalog read may fail itself."""
        try:
            catalog = await self.gpu_types(gpu_count=request.gpu_count, cloud=request.cloud)
        except RunPodError:
            catalog = []
        wanted = next((gpu for gpu in catalog if gpu.id == request.gpu_type_id), None)
        name = wanted.display_name if wanted else request.gpu_type_id
        alternatives = similar_in_stock(
            catalog, request.gpu_type_id, request.cloud, gpu_count=request.gpu_count
        )
        count = f"{request.gpu_count}x " if request.gpu_count > 1 else ""
        message = (
            f"RunPod has no {count}{name} free in the {request.cloud.lower()} cloud right now."
        )
        if alternatives:
            listed = ", ".join(gpu.label(request.cloud) for gpu in alternatives)
            hint = f"In stock at a similar price: {listed}. Pick one of them, or try again later."
        else:
            hint = "Try another GPU type or the other cloud, or try again later."
        return RunPodNoStock(
            message,
            hint,
            alternatives=alternatives,
            status=error.status,
            title=error.title,
            errors=error.errors,
        )


def _retry_after(response: httpx.Response) -> float:
    """Retry-After in seconds (RunPod sends integer seconds; an HTTP date is read too);
    1 s when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _log_line(data: str) -> str:
    try:
        event = json.loads(data)
    except ValueError:
        return data
    return str(event.get("line", "")) if isinstance(event, dict) else data
