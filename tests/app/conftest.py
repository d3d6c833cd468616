"""Fixtures for app.core tests: a store in tmp_path, a job with a token, the fake trainer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core.jobs import Job
from app.core.store import Store
from app.core.tokens import hash_token, new_job_token

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
API_KEY = "test-api-key"


@dataclass(frozen=True)
class TokenJob:
    job: Job
    token: str

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store.sqlite3")
    yield s
    s.close()


def make_job(store: Store, name: str = "run") -> TokenJob:
    job = store.create_job(name=name, method="sft", model="builtin:tiny-llama")
    token = new_job_token()
    return TokenJob(store.update_job(job.id, token_hash=hash_token(token)), token)


@pytest.fixture
def job(store: Store) -> TokenJob:
    return make_job(store)
