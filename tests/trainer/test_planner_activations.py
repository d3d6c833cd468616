"""The activation formula against what autograd really keeps: every tensor saved for backward
during one forward of the decoder stack (saved-tensor hooks; unique storages, parameters
excluded), for the model objects the trainer builds. On a CPU: fp32, and bf16 autocast as on a
GPU (the measured figure is what torch.cuda.max_memory_allocated would add for activations)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from trainer.config import parse_config
from trainer.planner import read_model_shapes
from trainer.planner.memory import (
    Hardware,
    activation_size,
    layer_activation_bytes,
    lora_input_size,
    lora_targets,
    resolve_precision,
)
from trainer.planner.model_shapes import SMOLLM2, TINY_LLAMA

BATCH, SEQ = 2, 128


def _saved_bytes(model_name: str, kind: str, dtype: str, autocast: bool) -> tuple[int, float]:
    """(measured bytes, estimated bytes) of the decoder stack's saved activations."""
    import torch

    from trainer.modeling import load_causal_lm, lora_config, plan_device, resolve_model_path

    torch.manual_seed(0)
    cfg = parse_config(
        {
            "model": {"name_or_path": model_name, "dtype": dtype},
            "adapter": {"kind": kind},
            "runtime": {"device": "cpu"},
            "training": {"precision": "bf16" if autocast else "fp32"},
        }
    )
    model: Any = load_causal_lm(cfg, resolve_model_path(model_name), plan_device(cfg))
    peft = lora_config(cfg)
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)
    model.train()
    base = model.get_base_model() if peft is not None else model
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, model.config.vocab_size, (BATCH, SEQ))
    embeds = base.model.embed_tokens(ids).detach().requires_grad_(kind == "full")
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with cast, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        base.model(inputs_embeds=embeds)

    shapes = read_model_shapes(model_name)
    hw = Hardware("cuda" if autocast else "cpu", bf16=True)
    weights_dtype, precision = resolve_precision(cfg, hw)
    e = activation_size(weights_dtype, precision)
    lora = [] if kind == "full" else lora_targets(shapes, cfg.adapter.target_modules)
    per_token = layer_activation_bytes(
        shapes, cfg, e, SEQ, lora, lora_input_size(cfg, e, precision)
    )
    return sum(saved.values()), per_token * shapes.num_layers * BATCH * SEQ


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_tiny_model_activations(kind: str) -> None:
    measured, estimated = _saved_bytes(TINY_LLAMA, kind, "float32", autocast=False)
    assert 0.9 <= estimated / measured <= 1.1, (estimated, measured)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["full", "lora"])
def test_smollm2_activations_under_bf16_autocast(kind: str) -> None:
    """The GPU configuration: bf16 weights, bf16 autocast, fp32 LoRA adapters."""
    measured, estimated = _saved_bytes(SMOLLM2, kind, "bfloat16", autocast=True)
    assert 0.95 <= estimated / measured <= 1.05, (estimated, measured)
