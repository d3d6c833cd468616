"""The planner: will a run fit in GPU memory, how long will it take, what will it cost.

Light (DESIGN §8): the config, the model's safetensors headers / config.json / GGUF metadata,
and arithmetic — no torch, transformers or TRL, so the desktop imports it. It knows no GPU
catalog of its own: callers pass the GPUs they know (``GpuOffer``: name, memory, price).
"""

from trainer.planner.fit import (
    GpuOffer,
    Suggestion,
    fits,
    less_memory_variant,
    suggestions,
)
from trainer.planner.memory import (
    GIB,
    RUNTIME_RESERVE_BYTES,
    Hardware,
    MemoryEstimate,
    MemoryPart,
    estimate_memory,
)
from trainer.planner.model_shapes import (
    ModelShapeError,
    ModelShapes,
    TensorSpec,
    read_model_shapes,
)
from trainer.planner.plan import GpuFit, Plan, local_gpus, make_plan
from trainer.planner.table import format_plan, plan_json

__all__ = [
    "GIB",
    "RUNTIME_RESERVE_BYTES",
    "GpuFit",
    "GpuOffer",
    "Hardware",
    "MemoryEstimate",
    "MemoryPart",
    "ModelShapeError",
    "ModelShapes",
    "Plan",
    "Suggestion",
    "TensorSpec",
    "estimate_memory",
    "fits",
    "format_plan",
    "less_memory_variant",
    "local_gpus",
    "make_plan",
    "plan_json",
    "read_model_shapes",
    "suggestions",
]
