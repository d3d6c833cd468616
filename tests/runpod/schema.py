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


class SchemaChecker:
    """Validates JSON against the document's components (OpenAPI 3.1 = JSON Schema 2020-12),
    with ``$ref``s resolved through a registry rooted at the whole document."""

    ROOT_URI = "urn:runpod-rest-v2"

    def __init__(self, doc: dict[str, Any]) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(self.ROOT_URI, resource)
        self._validator_class = Draft202012Validator
        self._cache: dict[str, Any] = {}

    def errors(self, instance: Any, pointer: str) -> list[str]:
        """Problems of ``instance`` against the schema at ``pointer`` ("#/components/..."),
        one line each, naming where in the instance."""
        return self.errors_for(instance, {"$ref": pointer})

    def errors_for(self, instance: Any, schema: dict[str, Any]) -> list[str]:
        """Problems of ``instance`` against a schema taken from the document (its ``$ref``s
        are relative to the document)."""
        key = json.dumps(schema, sort_keys=True)
        validator = self._cache.get(key)
        if validator is None:
            validator = self._validator_class(
                self._absolute(schema),
                registry=self._registry,
                format_checker=self._validator_class.FORMAT_CHECKER,
            )
            self._cache[key] = validator
        return [
            f"{'.'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        ]

    def _absolute(self, node: Any) -> Any:
        """The schema with its document-relative ``$ref``s made absolute (an inline schema
        has no base of its own)."""
        if isinstance(node, dict):
            return {
                key: f"{self.ROOT_URI}{value}"
                if key == "$ref" and isinstance(value, str) and value.startswith("#")
                else self._absolute(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [self._absolute(item) for item in node]
        return node

    def component(self, name: str) -> str:
        return f"#/components/schemas/{name}"
