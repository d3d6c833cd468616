"""Fixtures for the app.core tests: a store in tmp_path and a job with a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_jobs import TokenJob, make_job

from app.core.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store.sqlite3")
    yield s
    s.close()


@pytest.fixture
def job(store: Store) -> TokenJob:
    return make_job(store)
