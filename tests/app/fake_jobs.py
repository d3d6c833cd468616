"""Jobs with tokens and the fake trainer, for the app.core tests (imported by name: conftest
modules of several test folders share the name ``conftest``, so nothing is imported from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def make_job(store: Store, name: str = "run") -> TokenJob:
    job = store.create_job(name=name, method="sft", model="builtin:tiny-llama")
    token = new_job_token()
    return TokenJob(store.update_job(job.id, token_hash=hash_token(token)), token)
