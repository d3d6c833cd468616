"""The Settings dialog's "Test" buttons: does this RunPod key / Hugging Face token work?

Each check makes one real, read-only request (RunPod: list pods, through app.core.runpod's
client, the one way the app talks to RunPod; Hugging Face: whoami) and sorts the answer into
ok / rejected / unreachable / error with a sentence a user can act on. The base URL is a
parameter so tests can point it at a fake server on 127.0.0.1. Blocking: the dialog runs a check
on a worker thread. No message ever contains the secret.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from app.core.runpod.client import RUNPOD_API_BASE, RunPodClient
from app.core.runpod.errors import (
    RunPodAuthError,
    RunPodError,
    RunPodRateLimited,
    RunPodUnavailable,
)
from app.core.runpod.models import Pod

HF_API_BASE = "https://huggingface.co"
HF_WHOAMI_PATH = "/api/whoami-v2"
DEFAULT_TIMEOUT_S = 10.0

_CHECK_CONNECTION = "Check your internet connection and try again."

Outcome = Literal["ok", "rejected", "unreachable", "error"]


@dataclass(frozen=True)
class CheckResult:
    outcome: Outcome
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def check_runpod_key(
    key: str,
    *,
    base_url: str = RUNPOD_API_BASE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> CheckResult:
    """List pods with the key (read-only, costs nothing), through the one RunPod client.

    Blocking: runs its own event loop, so call it off any thread with a running loop (the
    dialog runs it on a worker thread)."""
    if not key.strip():
        return CheckResult("rejected", "Enter a RunPod API key first.")
    try:
        pods = asyncio.run(_list_runpod_pods(key, base_url, timeout_s))
    except RunPodAuthError as error:
        if error.status == 403:
            return CheckResult(
                "rejected",
                "RunPod rejected the key for pods (403): it is valid but lacks permission. Give "
                "it read/write access to pods in the RunPod console.",
            )
        return CheckResult(
            "rejected",
            "RunPod rejected the key (401). Check that it was copied whole, or create a new "
            "key in the RunPod console under Settings → API Keys.",
        )
    except RunPodRateLimited as error:
        wait = f" in {error.retry_after_s:.0f} s" if error.retry_after_s else " in a minute"
        return CheckResult("error", f"RunPod is limiting requests (429). Try again{wait}.")
    except RunPodUnavailable as error:
        if error.status is None:  # no answer at all
            return CheckResult("unreachable", f"{error.message} {_CHECK_CONNECTION}")
        return CheckResult(
            "error",
            f"RunPod had a server error ({error.status}); the key was not judged. Try again later.",
        )
    except RunPodError as error:
        return CheckResult("error", str(error))
    count = f" ({len(pods)} pod{'s' if len(pods) != 1 else ''} on the account)"
    return CheckResult("ok", f"RunPod accepted the key{count}.")


async def _list_runpod_pods(key: str, base_url: str, timeout_s: float) -> list[Pod]:
    # no retries: a Test button answers now, it does not wait out a Retry-After
    async with RunPodClient(key, base_url=base_url, timeout_s=timeout_s, max_retries=0) as client:
        return await client.find_pods()


def check_hf_token(
    token: str,
    *,
    base_url: str = HF_API_BASE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> CheckResult:
    """Ask the Hub who the token belongs to."""
    if not token.strip():
        return CheckResult("rejected", "Enter a Hugging Face token first.")
    response = _get(
        f"{base_url.rstrip('/')}{HF_WHOAMI_PATH}",
        token.strip(),
        timeout_s,
        service="Hugging Face",
    )
    if isinstance(response, CheckResult):
        return response
    if response.status_code == 200:
        body = _json(response)
        name = body.get("name")
        role = _token_role(body)
        who = f" as {name}" if isinstance(name, str) and name else ""
        scope = f" ({role} token)" if role else ""
        return CheckResult("ok", f"Hugging Face accepted the token{who}{scope}.")
    if response.status_code in (401, 403):
        return CheckResult(
            "rejected",
            f"Hugging Face rejected the token ({response.status_code}). Create a new one at "
            "huggingface.co/settings/tokens (write access is needed to push models).",
        )
    return _other_status(response, "Hugging Face")


def _get(url: str, secret: str, timeout_s: float, *, service: str) -> httpx.Response | CheckResult:
    headers = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}
    try:
        with httpx.Client(timeout=timeout_s) as client:
            return client.get(url, headers=headers)
    except httpx.TimeoutException:
        return CheckResult(
            "unreachable",
            f"Could not reach {service}: no answer within {timeout_s:g} s. Check your internet "
            "connection and try again.",
        )
    except httpx.HTTPError as exc:
        return CheckResult(
            "unreachable",
            f"Could not reach {service} ({type(exc).__name__}). Check your internet connection "
            "and try again.",
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _token_role(body: dict[str, Any]) -> str | None:
    auth = body.get("auth")
    if isinstance(auth, dict):
        token = auth.get("accessToken")
        if isinstance(token, dict) and isinstance(token.get("role"), str):
            return str(token["role"])
    return None


def _other_status(response: httpx.Response, service: str) -> CheckResult:
    if response.status_code == 429:
        wait = response.headers.get("Retry-After")
        after = f" in {wait} s" if wait else " in a minute"
        return CheckResult("error", f"{service} is limiting requests (429). Try again{after}.")
    if response.status_code >= 500:
        return CheckResult(
            "error",
            f"{service} had a server error ({response.status_code}); the credential was not "
            "judged. Try again later.",
        )
    return CheckResult(
        "error", f"{service} answered {response.status_code} unexpectedly; try again later."
    )
