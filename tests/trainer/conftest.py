"""Fixtures shared by the trainer's reporting and run-control tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.trainer.reporting_receiver import ReportingReceiver


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReportingReceiver]:
    """A live test receiver on 127.0.0.1, with the contract environment pointing at it.

    (test_reporting_sender.py and test_reporting_distributed.py define their own, without the
    environment.)"""
    r = ReportingReceiver().start()
    for key, value in r.env().items():
        monkeypatch.setenv(key, value)
    yield r
    r.close()
