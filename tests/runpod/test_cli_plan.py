"""`tunedeck plan` with a RunPod key stored (real keyring, scripts/with-keyring.sh): prices from
the live catalog (the fake RunPod), and from the shipped table with --offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.core.credentials import CredentialStore
from tests.runpod.cloud_helpers import point_app_at
from tests.runpod.fake_runpod import ACCOUNT_KEY, FakeRunPod
from tests.runpod.test_cli_runpod import _needs_secret_service


@pytest.fixture
def stored_key() -> Iterator[CredentialStore]:
    _needs_secret_service()
    store = CredentialStore(timeout_s=10)
    store.set("runpod_api_key", ACCOUNT_KEY)
    yield store
    store.delete("runpod_api_key")


def test_plan_uses_the_live_catalog_when_a_key_is_stored(
    fake_runpod: FakeRunPod,
    stored_key: CredentialStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_app_at(fake_runpod, monkeypatch)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": {"name_or_path": "builtin:tiny-llama"}}))
    assert main(["plan", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gpu_source"] == "RunPod prices from the live catalog"
    assert fake_runpod.requests_to("/v2/catalog/gpus")
    assert doc["gpus"] and all(g["fits"] for g in doc["gpus"])  # the tiny model fits anywhere
    asked = len(fake_runpod.requests)
    assert main(["plan", str(config), "--offline"]) == 0
    assert "Tunedeck's table" in capsys.readouterr().out
    assert len(fake_runpod.requests) == asked  # --offline asks nobody
