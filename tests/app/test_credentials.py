"""CredentialStore against the real Secret Service, no backend at all, and a hanging backend."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from keyring.backend import KeyringBackend

from app.core.credentials import (
    SECRET_NAMES,
    CredentialStore,
    KeyringUnavailable,
    UnknownSecret,
)

SECRET = "rpa_" + "S3cr3tValueThatMustNeverBeWritten"


def _secret_service_backend() -> KeyringBackend:
    """The real Secret Service; required (a failure, not a skip) in CI."""
    if os.environ.get("TUNEDECK_SECRET_SERVICE") != "1":
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "CI must run these tests with a Secret Service: run them through "
                "scripts/with-keyring.sh (make test does) after scripts/ensure-system-deps.sh"
            )
        pytest.skip("no Secret Service here: run under scripts/with-keyring.sh")
    from keyring.backends.SecretService import Keyring

    return Keyring()


@pytest.fixture
def real_store() -> Iterator[CredentialStore]:
    # A service name of its own, so that even a run on a real desktop touches nothing of the user's
    store = CredentialStore(
        _secret_service_backend(), service=f"tunedeck-test-{uuid.uuid4().hex[:8]}", timeout_s=10
    )
    yield store
    for name in SECRET_NAMES:
        store.delete(name)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """keyring's own fail backend, as in a plain venv with no D-Bus session."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


def _files_containing(text: str, *folders: Path) -> list[Path]:
    hits = []
    for folder in folders:
        if not folder.exists():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and text.encode() in path.read_bytes():
                hits.append(path)
    return hits


def _app_folders() -> list[Path]:
    return [Path(os.environ["TUNEDECK_CONFIG_DIR"]), Path(os.environ["TUNEDECK_DATA_DIR"])]


# ---- the real Secret Service ---------------------------------------------------------------


def test_secret_service_round_trip_survives_a_new_store(real_store: CredentialStore) -> None:
    status = real_store.probe()
    assert status.available, status
    assert "Secret Service" in status.backend

    real_store.set("runpod_api_key", SECRET + "\n")  # pasted with a newline
    real_store.set("hf_token", "hf_abcdefghijklmnopqrstuvwx")

    # A new store (as after restarting the app) reads what the keyring kept.
    again = CredentialStore(_secret_service_backend(), service=real_store._service)
    assert again.get("runpod_api_key") == SECRET
    assert again.get("hf_token") == "hf_abcdefghijklmnopqrstuvwx"
    assert again.source("runpod_api_key") == "keyring"
    assert again.get("receiver_api_key") is None

    again.delete("runpod_api_key")
    assert real_store.get("runpod_api_key") is None
    again.delete("runpod_api_key")  # deleting what is absent is not an error


def test_secret_service_value_is_in_no_file_of_ours(real_store: CredentialStore) -> None:
    real_store.set("runpod_api_key", SECRET)
    assert real_store.get("runpod_api_key") == SECRET
    assert _files_containing(SECRET, *_app_folders()) == []


def test_receiver_key_is_made_once_and_kept(real_store: CredentialStore) -> None:
    first = real_store.receiver_api_key()
    assert len(first) >= 40
    assert not real_store.is_session_only("receiver_api_key")
    again = CredentialStore(_secret_service_backend(), service=real_store._service)
    assert again.receiver_api_key() == first


def test_default_backend_is_the_secret_service() -> None:
    _secret_service_backend()
    store = CredentialStore(service=f"tunedeck-test-{uuid.uuid4().hex[:8]}")
    status = store.probe()
    assert status.available, status
    assert "Secret Service" in store.backend_description()


# ---- no usable backend ---------------------------------------------------------------------


def test_no_backend_raises_a_typed_error_with_a_hint(no_keyring: None) -> None:
    store = CredentialStore()
    status = store.probe()
    assert not status.available
    assert "No usable keyring" in status.message
    assert "this session only" in status.hint
    with pytest.raises(KeyringUnavailable) as caught:
        store.set("runpod_api_key", SECRET)
    assert caught.value.hint
    with pytest.raises(KeyringUnavailable):
        store.get("hf_token")


def test_session_only_secret_is_used_and_never_written(
    no_keyring: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = CredentialStore()
    store.set_session("runpod_api_key", SECRET)

    assert store.get("runpod_api_key") == SECRET
    assert store.source("runpod_api_key") == "session"
    assert store.is_session_only("runpod_api_key")
    assert SECRET in store.known_values()
    # gone with the process: a new store (a restart) does not have it
    with pytest.raises(KeyringUnavailable):
        CredentialStore().get("runpod_api_key")

    assert _files_containing(SECRET, *_app_folders()) == []
    assert SECRET not in caplog.text
    store.delete("runpod_api_key")  # forgetting a session value needs no keyring
    assert not store.is_session_only("runpod_api_key")


def test_receiver_key_falls_back_to_session_only(no_keyring: None) -> None:
    store = CredentialStore()
    key = store.receiver_api_key()
    assert store.is_session_only("receiver_api_key")
    assert store.receiver_api_key() == key


class PlaintextKeyring(KeyringBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring without installing keyrings.alt
    (which would then win keyring's backend selection for every other test)."""

    __module__ = "keyrings.alt.file"

    @keyring.compat.properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never selected automatically")

    def get_password(self, service: str, username: str) -> str | None:
        raise AssertionError("a plaintext backend must not be asked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("a plaintext backend must not be written")

    def delete_password(self, service: str, username: str) -> None:
        raise AssertionError("a plaintext backend must not be asked")


def test_plaintext_backend_is_refused_as_not_secure() -> None:
    store = CredentialStore(PlaintextKeyring())
    status = store.probe()
    assert not status.available
    assert "not secure" in status.message
    with pytest.raises(KeyringUnavailable, match="not secure"):
        store.set("hf_token", "hf_abcdefghijklmnopqrstuvwx")


def test_unknown_secret_name_is_a_bug_not_a_keyring_problem(no_keyring: None) -> None:
    with pytest.raises(UnknownSecret):
        CredentialStore().get("aws_key")
    with pytest.raises(ValueError, match="empty"):
        CredentialStore().set_session("hf_token", "   ")


# ---- a keyring that hangs ------------------------------------------------------------------


class HangingKeyring(KeyringBackend):
    """Like a D-Bus session without a secrets service: every call waits (NOTES.md: 120 s)."""

    release = threading.Event()
    calls = 0

    @keyring.compat.properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("test backend: never selected automatically")

    def get_password(self, service: str, username: str) -> str | None:
        type(self).calls += 1
        self.release.wait(30)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.get_password(service, username)

    def delete_password(self, service: str, username: str) -> None:
        self.get_password(service, username)


@pytest.fixture
def hanging() -> Iterator[HangingKeyring]:
    HangingKeyring.release.clear()
    HangingKeyring.calls = 0
    yield HangingKeyring()
    HangingKeyring.release.set()  # let the abandoned threads finish


def test_hanging_keyring_gives_up_at_the_time_limit(hanging: HangingKeyring) -> None:
    store = CredentialStore(hanging, timeout_s=0.3)
    started = time.monotonic()
    status = store.probe()
    waited = time.monotonic() - started
    assert not status.available
    assert "did not answer within 0.3 s" in status.message
    assert 0.25 < waited < 2

    # the rest of the session does not wait again: one broken keyring costs one wait
    started = time.monotonic()
    with pytest.raises(KeyringUnavailable):
        store.set("runpod_api_key", SECRET)
    assert time.monotonic() - started < 0.1
    assert HangingKeyring.calls == 1

    # the session-only fallback still works
    store.set_session("runpod_api_key", SECRET)
    assert store.get("runpod_api_key") == SECRET

    # asking again on purpose does try the keyring again
    assert not store.probe(force=True).available
    assert HangingKeyring.calls == 2


def test_async_get_waits_on_a_worker_not_on_the_loop(hanging: HangingKeyring) -> None:
    store = CredentialStore(hanging, timeout_s=0.3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(100):  # bounded: at most about a second
            await asyncio.sleep(0.01)
            ticks += 1

    async def scenario() -> int:
        tick_task = asyncio.create_task(ticker())
        with pytest.raises(KeyringUnavailable):
            await store.get_async("hf_token")
        seen = ticks
        tick_task.cancel()
        return seen

    # the loop kept ticking during the 0.3 s the keyring hung (a blocked loop would show 0)
    assert asyncio.run(scenario()) >= 10
