"""RunPod's RFC 9457 problem answers turned into the typed errors of errors.py, worded so a user
knows what to do. No-stock alternatives are filled in by the client (it needs the catalog)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.runpod.errors import (
    RunPodAuthError,
    RunPodError,
    RunPodNotFound,
    RunPodQuota,
    RunPodRejected,
    RunPodUnavailable,
)

CREDENTIALS_HINT = "check it in Settings → Credentials"
# RunPod has no machine-readable code for "no capacity" (see createPod in the schema): only the
# detail's wording tells a 400 for capacity from a 400 for a rule.
_NO_STOCK = re.compile(
    r"no longer any instances available|no (gpu|instances?|machines?|capacity)|"
    r"not enough (free )?(gpus|capacity)|out of (stock|capacity)|insufficient capacity|"
    r"could not (be )?placed?|does not have the resources",
    re.IGNORECASE,
)
_QUOTA = re.compile(r"quota|spend limit|balance|too many pods|limit reached", re.IGNORECASE)
# "gpu.count: must be >= 1", "/gpu/count must be ...", "unknown field \"foo\"", "name is required"
_FIELD_PATTERNS = (
    re.compile(r"^\s*/?([A-Za-z_][\w.\[\]/]*)\s*:"),
    re.compile(r"(?:field|property|parameter)s?\s+[\"'`]?([A-Za-z_][\w.\[\]]*)", re.IGNORECASE),
    re.compile(r"^\s*[\"'`]?([A-Za-z_][\w.\[\]]*)[\"'`]?\s+(?:is|must|should|has)\b"),
)


@dataclass(frozen=True)
class Problem:
    status: int
    title: str | None
    detail: str
    errors: tuple[str, ...]

    @classmethod
    def of(cls, response: httpx.Response) -> Problem:
        try:
            body: Any = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, Mapping):
            body = {}
        errors = body.get("errors")
        return cls(
            status=response.status_code,
            title=body.get("title") if isinstance(body.get("title"), str) else None,
            detail=str(body.get("detail") or body.get("title") or response.reason_phrase or ""),
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (),
        )

    def kwargs(self) -> dict[str, Any]:
        return {"status": self.status, "title": self.title, "errors": self.errors}


def is_no_stock(problem: Problem) -> bool:
    return problem.status in (400, 409) and bool(_NO_STOCK.search(problem.detail))


def refused_fields(problem: Problem) -> tuple[str, ...]:
    """The request fields RunPod names in ``errors`` (or the detail), in order, once each."""
    found: list[str] = []
    for text in problem.errors or (problem.detail,):
        for pattern in _FIELD_PATTERNS:
            match = pattern.search(text)
            if match:
                name = match.group(1).strip("/").replace("/", ".")
                if name not in found:
                    found.append(name)
                break
    return tuple(found)


def error_for(problem: Problem, *, action: str) -> RunPodError:
    """The error for an answer that is not a success; ``action`` says what was asked
    ("create pod tunedeck-x", "list pods") for the message."""
    status, detail = problem.status, problem.detail
    said = f" (RunPod said: {detail})" if detail else ""
    if status == 401:
        return RunPodAuthError(
            f"RunPod refused the API key: {CREDENTIALS_HINT}.",
            "If it was revoked, create a new key in the RunPod console under Settings → API Keys.",
            **problem.kwargs(),
        )
    if status == 403:
        return RunPodAuthError(
            f"RunPod refused to {action}: the API key lacks permission for it{said}.",
            f"Give the key read/write access to pods in the RunPod console, or {CREDENTIALS_HINT}.",
            **problem.kwargs(),
        )
    if status == 402 or (status in (400, 403, 429) and _QUOTA.search(detail)):
        return RunPodQuota(
            f"RunPod refused to {action}: the account's balance or quota does not allow it{said}.",
            "Add funds or raise the limit in the RunPod console (Billing), then try again.",
            **problem.kwargs(),
        )
    if status == 404:
        return RunPodNotFound(
            f"RunPod does not know that pod (could not {action}){said}.",
            "It may have been terminated already; the pod list shows what exists.",
            **problem.kwargs(),
        )
    if status in (400, 409, 422):
        fields = refused_fields(problem)
        named = ", ".join(f"`{field}`" for field in fields)
        reasons = "; ".join(problem.errors) if problem.errors else detail
        what = f"the field {named}" if len(fields) == 1 else f"the fields {named}"
        message = (
            f"RunPod refused {what} when asked to {action}: {reasons}."
            if fields
            else f"RunPod refused to {action}: {reasons or 'no reason given'}."
        )
        hint = (
            "Change that setting of the run's RunPod section and launch again."
            if fields
            else "Check the run's RunPod settings; the pod's current state may not allow it."
        )
        return RunPodRejected(message, hint, fields=fields, **problem.kwargs())
    if status >= 500:
        return RunPodUnavailable(
            f"RunPod had a server error ({status}) when asked to {action}{said}.",
            "Try again in a few minutes; status.runpod.io says whether RunPod is down.",
            **problem.kwargs(),
        )
    return RunPodError(
        f"RunPod answered {status} when asked to {action}{said}.",
        "Try again later.",
        **problem.kwargs(),
    )
