"""The vendored RunPod schema: present, the published one, and its absence fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runpod.schema import SCHEMA_PATH, load_schema


def test_the_vendored_schema_is_runpods_rest_v2() -> None:
    doc = load_schema()
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"][0]["url"] == "https://api.runpod.io"
    assert "/v2/pods" in doc["paths"]
    assert SCHEMA_PATH.parent.name == "data"


def test_a_missing_schema_fails_the_test_instead_of_skipping(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="schema is missing"):
        load_schema(tmp_path / "runpod-rest-v2-openapi.json")
