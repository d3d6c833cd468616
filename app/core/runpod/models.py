"""RunPod's objects as the app uses them, parsed from (and for PodRequest, written to) the
REST v2 JSON of the published schema (tests/data/runpod-rest-v2-openapi.json)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PodStatus = Literal["PROVISIONING", "STARTING", "RUNNING", "EXITED", "ERROR", "TERMINATED"]
POD_STATUSES: tuple[PodStatus, ...] = (
    "PROVISIONING",
    "STARTING",
    "RUNNING",
    "EXITED",
    "ERROR",
    "TERMINATED",
)
Cloud = Literal["SECURE", "COMMUNITY"]
PodAction = Literal["start", "stop", "restart", "terminate"]
Stock = Literal["NONE", "LOW", "MEDIUM", "HIGH"]

MAX_POD_ENV = 50  # RunPod refuses a pod with more environment variables (NOTES.md)
VOLUME_MOUNT_PATH = "/workspace"


@dataclass(frozen=True)
class Pod:
    """A pod as RunPod reports it. ``raw`` is the answer without ``env`` (whose values may be
    secrets such as the agent token); ``env_keys`` says which variables were set."""

    id: str
    name: str
    status: PodStatus
    cost_per_hour: float
    gpu_type_id: str | None
    gpu_count: int
    cloud: Cloud
    created_at: str
    env_keys: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Pod:
        gpu = body.get("gpu") or {}
        env = body.get("env") or {}
        return cls(
            id=str(body["id"]),
            name=str(body.get("name", "")),
            status=body.get("status", "PROVISIONING"),
            cost_per_hour=float(body.get("cost") or 0.0),
            gpu_type_id=gpu.get("id"),
            gpu_count=int(gpu.get("count") or (1 if gpu else 0)),
            cloud=body.get("cloud", "SECURE"),
            created_at=str(body.get("createdAt", "")),
            env_keys=tuple(sorted(env)),
            raw={key: value for key, value in body.items() if key != "env"},
        )

    @property
    def is_gone(self) -> bool:
        return self.status == "TERMINATED"

    @property
    def bills_compute(self) -> bool:
        """Whether the GPU is being paid for (a stopped pod still bills its disk)."""
        return self.status in ("PROVISIONING", "STARTING", "RUNNING")


@dataclass(frozen=True)
class GpuType:
    """A GPU type with its price per GPU per hour in each cloud (None: not offered there).
    ``stock`` is RunPod's availability level for pods, None when unknown (offline table)."""

    id: str
    display_name: str
    memory_gb: int
    secure_price: float | None
    community_price: float | None
    stock: str | None
    max_count: int

    def price(self, cloud: Cloud) -> float | None:
        return self.secure_price if cloud == "SECURE" else self.community_price

    @property
    def in_stock(self) -> bool:
        return self.stock not in (None, "NONE")

    def label(self, cloud: Cloud = "SECURE") -> str:
        """ "RTX A6000 (48 GB, $0.49/h)" for lists and hints."""
        price = self.price(cloud)
        cost = f", ${price:.2f}/h" if price is not None else ""
        return f"{self.display_name} ({self.memory_gb} GB{cost})"

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> GpuType:
        price = body.get("price") or {}
        offered = {"secure": bool(body.get("secure")), "community": bool(body.get("community"))}
        max_count = body.get("maxCount") or {}
        return cls(
            id=str(body["id"]),
            display_name=str(body.get("name") or body["id"]),
            memory_gb=int(body.get("memory") or 0),
            secure_price=_price(price.get("secure")) if offered["secure"] else None,
            community_price=_price(price.get("community")) if offered["community"] else None,
            stock=body.get("availability"),
            max_count=max([int(max_count.get(c) or 0) for c, on in offered.items() if on] or [0]),
        )


def _price(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


@dataclass(frozen=True)
class PodRequest:
    """What to create. ``args`` is the container's start command: a string as RunPod takes it,
    or an argument list (joined with shell quoting). ``volume_id`` mounts a network volume at
    /workspace. ``ports`` are "8765/http"-style entries."""

    name: str
    image: str
    gpu_type_id: str
    gpu_count: int = 1
    cloud: Cloud = "SECURE"
    container_disk_gb: int = 50
    volume_id: str | None = None
    ports: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    args: str | Sequence[str] = ""

    def __post_init__(self) -> None:
        if len(self.env) > MAX_POD_ENV:
            raise ValueError(
                f"a pod takes at most {MAX_POD_ENV} environment variables, got {len(self.env)}"
            )

    @property
    def start_command(self) -> str:
        return self.args if isinstance(self.args, str) else shlex.join(self.args)

    def to_json(self) -> dict[str, Any]:
        """The CreatePodRequest body (no field the schema does not allow)."""
        body: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "gpu": {"id": self.gpu_type_id, "count": self.gpu_count},
            "cloud": self.cloud,
            "disk": self.container_disk_gb,
        }
        if self.ports:
            body["ports"] = list(self.ports)
        if self.env:
            body["env"] = {str(key): str(value) for key, value in self.env.items()}
        if self.start_command:
            body["args"] = self.start_command
        if self.volume_id:
            body["mounts"] = {"network": [{"volumeId": self.volume_id, "path": VOLUME_MOUNT_PATH}]}
        return body


@dataclass(frozen=True)
class PodBilling:
    """What RunPod billed for pods over a window (USD), per pod."""

    total_usd: float
    by_pod: Mapping[str, float]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PodBilling:
        by_pod: dict[str, float] = {}
        for record in body.get("records") or []:
            pod_id = str(record.get("podId", ""))
            by_pod[pod_id] = by_pod.get(pod_id, 0.0) + float(record.get("totalAmount") or 0.0)
        totals = (body.get("metadata") or {}).get("totals") or {}
        total = totals.get("totalAmount")
        return cls(
            total_usd=float(total) if total is not None else sum(by_pod.values()),
            by_pod=by_pod,
        )
