"""Secrets in the OS keyring, with a time limit, and a session-only fallback (DESIGN.md §5).

Three named secrets live under the keyring service ``tunedeck``: the RunPod API key, the Hugging
Face token and the receiver's API key. Nothing here writes a secret to a file, a log or SQLite:
the keyring holds it, or (when no usable keyring exists) this process's memory does until exit.

Every keyring call runs on a daemon thread and is abandoned after ``timeout_s``: a D-Bus session
without a secrets service made a call hang for 120 s (NOTES.md), and a GUI must not freeze for
that. A daemon thread (not a ThreadPoolExecutor worker) so that a hung call never blocks exit.
After a time-out the store stops asking the keyring for the rest of the session, until
``probe(force=True)`` is called, so a broken desktop costs one wait, not one per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets as _random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)

SERVICE = "tunedeck"
SECRET_NAMES: tuple[str, ...] = ("runpod_api_key", "hf_token", "receiver_api_key")
SECRET_LABELS: dict[str, str] = {
    "runpod_api_key": "RunPod API key",
    "hf_token": "Hugging Face token",
    "receiver_api_key": "receiver API key",
}
DEFAULT_TIMEOUT_S = 5.0

Source = Literal["keyring", "session"]
T = TypeVar("T")


class KeyringUnavailable(Exception):
    """No usable OS keyring: none installed, locked, insecure, broken, or too slow to answer."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}"


class UnknownSecret(ValueError):
    """A secret name that Tunedeck does not keep (a bug in the caller, not a user error)."""


@dataclass(frozen=True)
class KeyringStatus:
    """What the keyring probe found, worded for the Settings dialog."""

    available: bool
    backend: str
    message: str
    hint: str = ""


_NO_BACKEND_HINT = (
    "Secrets you enter are kept for this session only and are never written anywhere; "
    "you will need to enter them again after a restart. To keep them, run a desktop keyring "
    "(GNOME Keyring, KWallet, macOS Keychain or Windows Credential Manager) and reopen Settings."
)


_FRIENDLY_NAMES = {
    "keyring.backends.SecretService": "Secret Service (GNOME Keyring, KWallet, KeePassXC)",
    "keyring.backends.libsecret": "libsecret (GNOME Keyring)",
    "keyring.backends.kwallet": "KWallet",
    "keyring.backends.macOS": "macOS Keychain",
    "keyring.backends.Windows": "Windows Credential Manager",
    "keyring.backends.fail": "none",
    "keyring.backends.null": "null (forgets everything)",
}


def _describe(backend: KeyringBackend) -> str:
    kind = type(backend)
    module = kind.__module__
    return _FRIENDLY_NAMES.get(module, f"{module}.{kind.__qualname__}")


def _insecure_reason(backend: KeyringBackend) -> str | None:
    """Why a backend must not hold secrets, or None when it is a real keyring."""
    kind = type(backend)
    module, name = kind.__module__, kind.__qualname__
    if module.startswith("keyrings.alt") and "plaintext" in name.lower():
        return f"the keyring backend {module}.{name} stores secrets in a plain file (not secure)"
    if module.startswith("keyrings.alt") and module.endswith(("file", "_win32", "pyfs")):
        # keyrings.alt's file backends are either plaintext or keyed by a password we would
        # have to ask for; neither is the OS keyring the design promises.
        return f"the keyring backend {module}.{name} is a file, not the OS keyring (not secure)"
    if module == "keyring.backends.null":
        return "the keyring backend is the null backend, which forgets everything"
    if module == "keyring.backends.fail":
        return "no OS keyring backend is available"
    inner = getattr(backend, "backends", None)
    if module == "keyring.backends.chainer" and isinstance(inner, list):
        reasons = [r for r in (_insecure_reason(b) for b in inner) if r]
        if reasons:
            return reasons[0]
        if not inner:
            return "no OS keyring backend is available"
    return None


def _call_with_time_limit(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    future: Future[T] = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the caller, who re-raises it
            future.set_exception(exc)

    threading.Thread(target=target, name=f"keyring-{what}", daemon=True).start()
    return future.result(timeout=timeout_s)


class CredentialStore:
    """get/set/delete the named secrets; thread-safe; each keyring call has a time limit.

    ``backend`` is the keyring backend to use; None means the one ``keyring`` selects (resolved
    off the calling thread, because selecting it already talks to D-Bus). Values set with
    ``set_session`` live in memory only and win over the keyring for the rest of the session.
    """

    def __init__(
        self,
        backend: KeyringBackend | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        service: str = SERVICE,
    ) -> None:
        self._backend = backend
        self._timeout_s = timeout_s
        self._service = service
        self._lock = threading.Lock()
        self._session: dict[str, str] = {}
        self._seen: set[str] = set()
        self._broken: KeyringUnavailable | None = None

    # ---- status -------------------------------------------------------------------------

    def probe(self, *, force: bool = False) -> KeyringStatus:
        """Check the keyring with one harmless read; never raises."""
        if force:
            with self._lock:
                self._broken = None
        try:
            self._keyring_call("probe", lambda b: b.get_password(self._service, "probe"))
        except KeyringUnavailable as exc:
            return KeyringStatus(False, self.backend_description(), exc.message, exc.hint)
        return KeyringStatus(
            True,
            self.backend_description(),
            f"Secrets are kept in the OS keyring ({self.backend_description()}).",
        )

    @property
    def problem(self) -> KeyringUnavailable | None:
        """Why the keyring is not being asked this session (a time-out, a refusal), or None."""
        with self._lock:
            return self._broken

    def backend_description(self) -> str:
        """A human name for the backend in use ('not resolved yet' before the first call)."""
        backend = self._backend
        if backend is None:
            return "not resolved yet"
        return _describe(backend)

    # ---- secrets ------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The secret, from this session's memory first, else the keyring; None if unset.

        Raises KeyringUnavailable when the keyring cannot be asked and no session value exists.
        """
        _check_name(name)
        with self._lock:
            if name in self._session:
                return self._session[name]
        value = self._keyring_call("read", lambda b: b.get_password(self._service, name))
        if value:
            self._remember(value)
        return value or None

    async def get_async(self, name: str) -> str | None:
        """``get`` for code on the asyncio (qasync) loop: the wait happens on a worker thread."""
        return await asyncio.to_thread(self.get, name)

    def set(self, name: str, value: str) -> None:
        """Save to the keyring. Raises KeyringUnavailable; then offer ``set_session`` instead."""
        _check_name(name)
        value = _clean(value)
        self._keyring_call("write", lambda b: b.set_password(self._service, name, value))
        self._remember(value)
        with self._lock:
            # A saved value replaces a session-only one: the keyring is the record now.
            self._session.pop(name, None)

    def set_session(self, name: str, value: str) -> None:
        """Keep the secret in this process's memory only; it is never written anywhere."""
        _check_name(name)
        value = _clean(value)
        self._remember(value)
        with self._lock:
            self._session[name] = value

    def delete(self, name: str) -> None:
        """Forget the secret in memory and in the keyring (absent is fine)."""
        _check_name(name)
        with self._lock:
            had_session = self._session.pop(name, None) is not None

        def remove(backend: KeyringBackend) -> None:
            # nothing stored under that name is already the outcome asked for
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                backend.delete_password(self._service, name)

        try:
            self._keyring_call("delete", remove)
        except KeyringUnavailable:
            if not had_session:
                raise

    def source(self, name: str) -> Source | None:
        """Where the secret currently comes from (asks the keyring; may raise)."""
        _check_name(name)
        with self._lock:
            if name in self._session:
                return "session"
        return "keyring" if self.get(name) is not None else None

    def is_session_only(self, name: str) -> bool:
        with self._lock:
            return name in self._session

    def receiver_api_key(self) -> str:
        """The receiver's API key: the stored one, or a new random one saved to the keyring.

        With no usable keyring a session-only key is made: the receiver and the trainers it
        starts share this process's lifetime, so nothing is lost by not keeping it.
        """
        try:
            existing = self.get("receiver_api_key")
        except KeyringUnavailable:
            existing = None
        if existing:
            return existing
        key = _random.token_urlsafe(32)
        try:
            self.set("receiver_api_key", key)
        except KeyringUnavailable:
            self.set_session("receiver_api_key", key)
        return key

    def known_values(self) -> frozenset[str]:
        """Every secret value read or written this session: what redaction must hide."""
        with self._lock:
            return frozenset(self._seen)

    # ---- internals ----------------------------------------------------------------------

    def _remember(self, value: str) -> None:
        with self._lock:
            self._seen.add(value)

    def _resolve_backend(self) -> KeyringBackend:
        backend = self._backend
        if backend is None:
            backend = keyring.get_keyring()
            self._backend = backend
        reason = _insecure_reason(backend)
        if reason:
            raise KeyringUnavailable(f"No usable keyring: {reason}.", _NO_BACKEND_HINT)
        return backend

    def _keyring_call(self, what: str, op: Callable[[KeyringBackend], T]) -> T:
        with self._lock:
            broken = self._broken
        if broken is not None:
            raise broken
        try:
            return _call_with_time_limit(lambda: op(self._resolve_backend()), self._timeout_s, what)
        except FutureTimeout:
            error = KeyringUnavailable(
                f"The OS keyring did not answer within {self._timeout_s:g} s "
                f"({self.backend_description()}); it is probably locked or broken.",
                "Unlock or restart your desktop keyring and reopen Settings. " + _NO_BACKEND_HINT,
            )
        except KeyringUnavailable as exc:
            error = exc
        except keyring.errors.KeyringLocked:
            error = KeyringUnavailable(
                "The OS keyring is locked and was not unlocked.",
                "Unlock it (your login password usually does) and reopen Settings.",
            )
        except keyring.errors.KeyringError as exc:
            error = KeyringUnavailable(
                f"The OS keyring refused the request ({type(exc).__name__}: {exc}).",
                _NO_BACKEND_HINT,
            )
        except Exception as exc:
            # secretstorage/jeepney raise their own errors for a bus without a secrets service
            error = KeyringUnavailable(
                f"The OS keyring failed ({type(exc).__name__}: {exc}).", _NO_BACKEND_HINT
            )
        with self._lock:
            self._broken = error
        raise error


class SecretReader(Protocol):
    async def get_async(self, name: str) -> str | None: ...


async def read_secret(store: SecretReader, name: str) -> str | None:
    """A secret for a run, or None when it is unset or the keyring cannot answer (in time).

    Runs go on without it (a public model needs no Hub token), so the reason is only logged.
    """
    try:
        value = await store.get_async(name)
    except KeyringUnavailable as err:
        log.info("%s not available: %s", name, err.message)
        return None
    return value or None


def _check_name(name: str) -> None:
    if name not in SECRET_NAMES:
        raise UnknownSecret(f"unknown secret {name!r}; Tunedeck keeps {', '.join(SECRET_NAMES)}")


def _clean(value: str) -> str:
    # Pasted keys often carry a trailing newline or spaces; a key never contains them.
    value = value.strip()
    if not value:
        raise ValueError("an empty secret cannot be saved; use delete() to remove one")
    return value
