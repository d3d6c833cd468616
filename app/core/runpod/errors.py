"""What can go wrong talking to RunPod, as errors a user can act on (a message and a hint).

Every failure the client expects is one of these; anything else is a bug. The messages never
contain the API key. ``str(error)`` is the message followed by the hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core.runpod.models import GpuType


class RunPodError(RuntimeError):
    """RunPod refused or failed a request; ``status``/``title``/``errors`` come from its
    RFC 9457 problem body when there was one."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        status: int | None = None,
        title: str | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.title = title
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class RunPodAuthError(RunPodError):
    """401/403: the key is wrong, revoked, or lacks the permission the call needs."""


class RunPodNotFound(RunPodError):
    """404: no such pod (or not one this key may see)."""


class RunPodNoStock(RunPodError):
    """No machine with that GPU type is free; ``alternatives`` are types in stock at a similar
    price (from the catalog), best match first."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        alternatives: Sequence[GpuType] = (),
        status: int | None = None,
        title: str | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint, status=status, title=title, errors=errors)
        self.alternatives = list(alternatives)


class RunPodQuota(RunPodError):
    """402 or a quota/limit refusal: no request of this kind will succeed until the account
    changes (balance, spend limit, GPU quota)."""


class RunPodRejected(RunPodError):
    """400/409/422: RunPod refused the request itself; ``fields`` names what it refused."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        fields: Sequence[str] = (),
        status: int | None = None,
        title: str | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint, status=status, title=title, errors=errors)
        self.fields = tuple(fields)


class RunPodRateLimited(RunPodError):
    """429 after the retries allowed; ``retry_after_s`` is what RunPod asked for last."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        retry_after_s: float | None = None,
        status: int | None = 429,
        title: str | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint, status=status, title=title, errors=errors)
        self.retry_after_s = retry_after_s


class RunPodUnavailable(RunPodError):
    """5xx, a timeout or a network failure after the retries allowed for that call.
    ``maybe_done`` is True when the request may have taken effect anyway (a create that timed
    out or answered 5xx may still have made a pod that bills: look it up by name)."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        maybe_done: bool = False,
        status: int | None = None,
        title: str | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint, status=status, title=title, errors=errors)
        self.maybe_done = maybe_done
