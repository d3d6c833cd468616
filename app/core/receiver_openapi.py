"""The receiver's OpenAPI document: built from the trainer's wire models, kept in the repo.

``receiver_openapi.json`` beside this file is generated; regenerate it after changing
trainer/events.py or the receiver's routes with::

    python -m app.core.receiver_openapi

A test checks that the committed file equals what ``build_openapi()`` makes now, and that the
running receiver serves exactly that file.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from trainer.events import ALERTS_PATH, METRICS_PATH, Alert, MetricsBatch

OPENAPI_FILE = Path(__file__).with_name("receiver_openapi.json")
REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (MetricsBatch, Alert):
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    obj = {"type": "object"}
    schemas["Error"] = {
        **obj,
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    }
    schemas["MetricsAccepted"] = {
        **obj,
        "required": ["ok", "job_id", "stored", "merged"],
        "properties": {
            "ok": {"type": "boolean"},
            "job_id": {"type": "string"},
            "stored": {"type": "integer", "description": "points for steps not seen before"},
            "merged": {"type": "integer", "description": "points that filled in a stored step"},
        },
    }
    schemas["AlertAccepted"] = {
        **obj,
        "required": ["ok", "job_id", "stored"],
        "properties": {
            "ok": {"type": "boolean"},
            "job_id": {"type": "string"},
            "stored": {"type": "boolean", "description": "false for a repeat of a stored alert"},
            "status": {"type": ["string", "null"], "description": "the job's status now"},
        },
    }
    schemas["StoredMetrics"] = {
        **obj,
        "required": ["job_id", "metrics"],
        "properties": {
            "job_id": {"type": "string"},
            "metrics": {"type": "array", "items": {"type": "object"}},
        },
    }
    schemas["StoredAlerts"] = {
        **obj,
        "required": ["job_id", "alerts"],
        "properties": {
            "job_id": {"type": "string"},
            "alerts": {"type": "array", "items": {"type": "object"}},
        },
    }
    return schemas


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "The body could not be read (a Content-Encoding it does not match).",
        401: "Missing or wrong credentials, or a job the token does not open (the response "
        "never says which part, nor whether the job exists).",
        404: "Unknown job (only to a holder of the install key).",
        408: "The body did not arrive in time (a slow client is cut off).",
        410: "The job ended too long ago; it takes no more metrics (error `job_closed`).",
        413: "Body over the size limit.",
        422: "The body does not fit the schema, or holds NaN/Infinity; `detail` names the field.",
    }
    content = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    return {str(s): {"description": words[s], "content": content} for s in statuses}


def _ok(model: str, description: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
        }
    }


def _json_body(model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
    }


def _read(summary: str, model: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {**_ok(model, "Stored records, oldest first."), **_errors(401, 404)},
        }
    }


def build_openapi() -> dict[str, Any]:
    metrics_read = _read("A job's stored metric points", "StoredMetrics")
    metrics_read["get"]["parameters"].append(
        {
            "name": "after_step",
            "in": "query",
            "required": False,
            "schema": {"type": "integer"},
            "description": "only points with a larger step",
        }
    )
    metrics_read["get"]["responses"].update(_errors(422))
    return {
        "x-generated": "by `python -m app.core.receiver_openapi` from trainer/events.py; "
        "do not edit by hand",
        "openapi": "3.1.0",
        "info": {
            "title": "Tunedeck receiver",
            "version": "1",
            "description": "Where trainers post metrics and alerts (DESIGN.md §3).",
        },
        "paths": {
            METRICS_PATH: {
                "post": {
                    "summary": "Metric points of one job (several per request)",
                    "security": [{"bearer": []}],
                    "requestBody": _json_body("MetricsBatch"),
                    "responses": {
                        **_ok("MetricsAccepted", "Stored; a repeated step fills in."),
                        **_errors(400, 401, 404, 408, 410, 413, 422),
                    },
                }
            },
            ALERTS_PATH: {
                "post": {
                    "summary": "An alert about a job (the install key, or that job's own token)",
                    "security": [{"apiKey": []}, {"bearer": []}],
                    "requestBody": _json_body("Alert"),
                    "responses": {
                        **_ok("AlertAccepted", "Stored; the job's status follows the alert."),
                        **_errors(400, 401, 404, 408, 413, 422),
                    },
                }
            },
            "/api/jobs/{job_id}/metrics": metrics_read,
            "/api/jobs/{job_id}/alerts": _read("A job's stored alerts", "StoredAlerts"),
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": {
                            "description": "The receiver is up.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "JOB_TOKEN"},
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "INTERNAL_API_KEY",
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build_openapi(), indent=2, ensure_ascii=False) + "\n"


@cache
def load_openapi() -> dict[str, Any]:
    """The committed document (what the receiver serves)."""
    data: dict[str, Any] = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
    return data


def main() -> int:
    OPENAPI_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {OPENAPI_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
