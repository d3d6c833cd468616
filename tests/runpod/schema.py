"""RunPod's published REST v2 schema, vendored in tests/data (see tests/data/README.md).

Every test that checks a request or an answer against the schema loads it here. A missing file
fails the test: a schema test that skipped would let CI pass without checking anything.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "runpod-rest-v2-openapi.json"


@functools.cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """The whole OpenAPI document (a fresh copy each call: callers may not share edits)."""
    if not path.is_file():
        pytest.fail(
            f"RunPod's OpenAPI schema is missing at {path}: copy it back from "
            "../shared/data/runpod-rest-v2-openapi.json (see tests/data/README.md)",
            pytrace=False,
        )
    doc = json.loads(_read(path))
    assert isinstance(doc, dict)
    return doc
