"""The fake RunPod server's contract checks: each request's query and body, and each of its own
answers, against the operation the published schema declares for that path and method."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tests.runpod.schema import SchemaChecker

JSON_TYPES = ("application/json", "application/problem+json")


class Contract:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.checker = SchemaChecker(doc)

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operation(self, method: str, template: str) -> dict[str, Any] | None:
        path = self.doc["paths"].get(template)
        if path is None:
            return None
        op = path.get(method.lower())
        if op is None:
            return None
        params = [self._resolve(p) for p in path.get("parameters", [])]
        params += [self._resolve(p) for p in op.get("parameters", [])]
        return {**op, "_parameters": params, "_template": template, "_method": method.upper()}

    def request_problems(
        self, op: dict[str, Any], query: Mapping[str, str], body: bytes
    ) -> list[str]:
        """What the schema says is wrong with the request (empty: fine)."""
        where = f"{op['_method']} {op['_template']}"
        problems: list[str] = []
        declared = {p["name"]: p for p in op["_parameters"] if p["in"] == "query"}
        for name, raw in query.items():
            param = declared.get(name)
            if param is None:
                problems.append(f"{where}: query parameter {name!r} is not in the schema")
                continue
            value = _query_value(raw, param.get("schema", {}), self)
            for error in self.checker.errors_for(value, param.get("schema", {})):
                problems.append(f"{where}: query {name}: {error}")
        request_body = op.get("requestBody")
        if request_body is None:
            if body:
                problems.append(f"{where}: a body was sent but the operation takes none")
            return problems
        try:
            instance = json.loads(body) if body else None
        except ValueError:
            return [*problems, f"{where}: the body is not JSON"]
        if instance is None and request_body.get("required"):
            return [*problems, f"{where}: the body is required"]
        schema = request_body["content"]["application/json"]["schema"]
        problems += [f"{where}: body {e}" for e in self.checker.errors_for(instance, schema)]
        return problems

    def answer_problems(
        self, op: dict[str, Any], status: int, content_type: str, body: bytes
    ) -> list[str]:
        """What the schema says is wrong with an answer the fake gave."""
        where = f"answer {status} to {op['_method']} {op['_template']}"
        responses = op.get("responses", {})
        declared = responses.get(str(status)) or responses.get("default")
        if declared is None:
            return [f"{where}: status not declared"]
        declared = self._resolve(declared)
        content = declared.get("content")
        if not content:
            return [f"{where}: declared without a body but has one"] if body else []
        media = content.get(content_type)
        if media is None:
            return [f"{where}: content type {content_type!r} not in {sorted(content)}"]
        if content_type not in JSON_TYPES:
            return []
        try:
            instance = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return [f"{where}: {e}" for e in self.checker.errors_for(instance, media["schema"])]


def _query_value(raw: str, schema: dict[str, Any], contract: Contract) -> Any:
    schema = contract._resolve(schema)
    kind = schema.get("type")
    if kind == "array":
        return [_query_value(item, schema.get("items", {}), contract) for item in raw.split(",")]
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    return raw
