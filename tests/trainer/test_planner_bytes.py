"""The planner's weight, trainable, gradient and optimizer figures equal the bytes of the real
model objects the trainer's own modeling code builds (trainer.modeling + peft, as TRL wraps
them), after a real AdamW step: exact, not approximately."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.config import RunConfig, parse_config
from trainer.planner import Hardware, estimate_memory, read_model_shapes
from trainer.planner.model_shapes import SMOLLM2, TINY_LLAMA


def _config(
    model: str, kind: str, dtype: str = "float32", targets: str = "all-linear"
) -> RunConfig:
    return parse_config(
        {
            "model": {"name_or_path": model, "dtype": dtype},
            "adapter": {"kind": kind, "r": 8, "target_modules": targets},
            "runtime": {"device": "cpu"},
            "training": {"max_length": 16},
        }
    )


def _measured(cfg: RunConfig) -> dict[str, int]:
    """Bytes of the model object the trainer trains, its gradients and AdamW's state after one
    real step."""
    import torch

    from trainer.modeling import load_causal_lm, lora_config, plan_device, resolve_model_path

    torch.manual_seed(0)
    plan = plan_device(cfg)
    model: Any = load_causal_lm(cfg, resolve_model_path(cfg.model.name_or_path), plan)
    peft = lora_config(cfg)
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)  # what TRL's trainers do with peft_config
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    state = [
        t
        for p in trainable
        for key, t in optimizer.state[p].items()
        if key in ("exp_avg", "exp_avg_sq")
    ]

    def size(tensors: list[Any]) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    return {
        "weights": size(params),
        "trainable": size(trainable),
        "gradients": size([p.grad for p in trainable if p.grad is not None]),
        "optimizer": size(state),
    }


def _estimated(cfg: RunConfig) -> dict[str, int]:
    est = estimate_memory(cfg, read_model_shapes(cfg.model.name_or_path), Hardware("cpu"))
    return {k: est.part(k) for k in ("weights", "trainable", "gradients", "optimizer")}


@pytest.mark.parametrize(
    ("kind", "dtype", "targets"),
    [
        ("full", "float32", "all-linear"),
        ("lora", "float32", "all-linear"),
        ("lora", "bfloat16", "all-linear"),  # frozen base in bf16, adapters upcast to fp32
        ("lora", "float32", "q_proj,v_proj"),
        ("full", "bfloat16", "all-linear"),
    ],
)
def test_tiny_model_bytes_are_exact(kind: str, dtype: str, targets: str) -> None:
    cfg = _config(TINY_LLAMA, kind, dtype, targets)
    assert _estimated(cfg) == _measured(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lora", "full"])
def test_smollm2_bytes_are_exact(kind: str) -> None:
    """SmolLM2-135M (tied embeddings: one parameter, counted once)."""
    cfg = _config(SMOLLM2, kind)
    measured = _measured(cfg)
    assert _estimated(cfg) == measured
    assert measured["weights"] > 500_000_000 if kind == "full" else measured["trainable"] > 0
