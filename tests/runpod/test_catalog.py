"""The offline GPU table, the choice of alternatives, and the models' JSON both ways."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from app.core.runpod.catalog import GPU_TABLE_PATH, load_gpu_table, similar_in_stock
from app.core.runpod.models import MAX_POD_ENV, GpuType, Pod, PodBilling, PodRequest
from tests.runpod.schema import SchemaChecker


def test_the_table_is_dated_and_says_its_prices_are_indicative() -> None:
    doc = json.loads(GPU_TABLE_PATH.read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc["generated"])
    assert "indicative" in doc["_comment"].lower() and doc["generated"] in doc["_comment"]
    assert "indicative" in doc["source"].lower()
    table = load_gpu_table()
    assert table.generated == doc["generated"]
    ids = [gpu.id for gpu in table.gpus]
    assert len(ids) == len(set(ids)) >= 15
    for gpu in table.gpus:
        assert gpu.memory_gb >= 16 and gpu.max_count >= 1
        assert gpu.secure_price is not None and gpu.secure_price > 0
        assert gpu.community_price is None or 0 < gpu.community_price <= gpu.secure_price * 1.5
        assert gpu.stock is None  # a table cannot know what is free now


def test_table_rows_are_valid_catalog_entries(runpod_schema: dict[str, Any]) -> None:
    """The fake answers its catalog from the table: each row must make a schema-valid GpuType."""
    checker = SchemaChecker(runpod_schema)
    doc = json.loads(GPU_TABLE_PATH.read_text())
    for row in doc["gpus"]:
        entry = {
            "id": row["id"],
            "name": row["name"],
            "pool": None,
            "manufacturer": row["manufacturer"],
            "memory": row["memory_gb"],
            "secure": row["secure_price"] is not None,
            "community": row["community_price"] is not None,
            "price": {"secure": row["secure_price"], "community": row["community_price"] or 0},
            "maxCount": {
                "secure": row["max_count_secure"],
                "community": row["max_count_community"],
            },
        }
        assert checker.errors(entry, checker.component("GpuType")) == [], row["id"]
        assert GpuType.from_json(entry).community_price == row["community_price"]


def _gpu(gpu_id: str, price: float, memory: int = 24, stock: str | None = "HIGH") -> GpuType:
    return GpuType(gpu_id, gpu_id, memory, price, price / 2, stock, 8)


def test_similar_in_stock_is_closest_in_price_then_memory() -> None:
    gpus = [
        _gpu("wanted", 1.00, memory=48, stock="NONE"),
        _gpu("cheap", 0.20),
        _gpu("near-small", 1.10, memory=24),
        _gpu("near-big", 0.90, memory=80),
        _gpu("gone", 1.00, stock="NONE"),
        _gpu("far", 3.00),
    ]
    chosen = similar_in_stock(gpus, "wanted", "SECURE", limit=3)
    assert [g.id for g in chosen] == ["near-big", "near-small", "cheap"]
    assert [g.id for g in similar_in_stock(gpus, "unknown", "SECURE", limit=2)] == [
        "cheap",
        "near-big",
    ]
    assert similar_in_stock(gpus, "wanted", "SECURE", gpu_count=9) == []


def test_pod_request_body_and_its_limits(runpod_schema: dict[str, Any]) -> None:
    checker = SchemaChecker(runpod_schema)
    minimal = PodRequest(name="n", image="i", gpu_type_id="NVIDIA L4")
    assert minimal.to_json() == {
        "name": "n",
        "image": "i",
        "gpu": {"id": "NVIDIA L4", "count": 1},
        "cloud": "SECURE",
        "disk": 50,
    }
    assert checker.errors(minimal.to_json(), checker.component("CreatePodRequest")) == []
    assert PodRequest("n", "i", "g", args=["python3", "-c", "print('a b')"]).start_command == (
        "python3 -c 'print('\"'\"'a b'\"'\"')'"
    )
    with pytest.raises(ValueError, match=f"at most {MAX_POD_ENV}"):
        PodRequest("n", "i", "g", env={f"V{i}": "x" for i in range(MAX_POD_ENV + 1)})
    assert "env" not in repr(PodRequest("n", "i", "g", env={"TOKEN": "secret-value"}))


def test_pod_and_billing_parse_the_schemas_examples(runpod_schema: dict[str, Any]) -> None:
    paths = runpod_schema["paths"]
    example = paths["/v2/pods/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
    pod = Pod.from_json(example["examples"]["pod"]["value"])
    assert (pod.id, pod.status, pod.cost_per_hour, pod.gpu_count) == (
        "7h9k2m4n6p",
        "RUNNING",
        0.44,
        1,
    )
    assert pod.bills_compute and not pod.is_gone
    assert pod.env_keys == ("MODEL_NAME",) and "env" not in pod.raw
    billing = paths["/v2/billing/pods"]["get"]["responses"]["200"]["content"]["application/json"]
    parsed = PodBilling.from_json(billing["examples"]["podBilling"]["value"])
    assert parsed.total_usd == 12.34 and parsed.by_pod == {"7h9k2m4n6p": 12.34}
