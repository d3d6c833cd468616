"""How long a run takes on a GPU: training FLOPs over the GPU's sustained throughput.

FLOPs per trained token (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", section
2.1: C ≈ 6*N per token, 2N forward + 4N backward):

- full fine-tuning: 6*N;
- LoRA / QLoRA: 4*N — the backward still computes activation gradients (2N) but no weight
  gradients for the frozen base (the adapters' own FLOPs are negligible);
- gradient checkpointing: + 2*N (one more forward; Korthikanti et al. 2022, section 5);
- DPO/KTO with a reference model: + 2*N per token for its forward (also under LoRA, where the
  reference is the adapter switched off);
- GRPO / rlhf: + generation, 2*N per sampled token, at a much lower utilisation (decoding one
  token at a time is memory-bound: ``DECODE_MFU``).

Seconds = FLOPs / (peak dense bf16 TFLOPS x MFU). Attention's s² FLOPs are left out (small next
to 6N below a few thousand tokens for models of this size).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trainer.config import RunConfig

# Model FLOPs utilisation a single-GPU Hugging Face fine-tune sustains. PaLM (Chowdhery et al.
# 2022, section 4.1) reports 46% at scale with a tuned stack; small batches through the HF
# Trainer reach well under that: 30% is taken here.
MFU = 0.30
# Sampling with transformers' generate is memory-bound: a few % of peak (measured figures in
# the vLLM paper, Kwon et al. 2023, fig. 1, put HF generate far below serving engines).
DECODE_MFU = 0.03

# Dense (no sparsity) bf16 tensor TFLOPS with fp32 accumulate, from NVIDIA's and AMD's data
# sheets (H100/H200: "H100 Tensor Core GPU" datasheet; A100: "A100 datasheet"; Ada: "NVIDIA
# ADA GPU architecture" whitepaper, appendix; Ampere workstation cards: their datasheets;
# Blackwell: "B200" and "RTX PRO 6000 Blackwell" datasheets; MI300X: AMD's datasheet).
# Matched on the GPU name, most specific first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIE", 756.0),
    ("H100", 989.0),
    ("B200", 2250.0),
    ("MI300X", 1307.0),
    ("A100", 312.0),
    ("RTX PRO 6000", 503.8),
    ("RTX 6000 ADA", 364.2),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("A40", 149.7),
    ("RTX A6000", 154.8),
    ("RTX A5000", 111.1),
    ("RTX A4500", 94.6),
    ("RTX A4000", 76.7),
    ("RTX 4000 ADA", 106.9),
    ("RTX 5090", 209.5),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
    ("L4", 121.0),
    ("T4", 65.0),
    ("V100", 125.0),
)


# GPUs before Ampere have no bfloat16: there the trainer loads float32 weights and trains with
# fp16 mixed precision (trainer.modeling.plan_device), which doubles the weights' memory.
NO_BF16 = re.compile(r"\b(T4|V100|P100|P40|P4|GTX|TITAN (V|RTX|XP?)|QUADRO RTX|RTX 20[0-9]0)\b")


def supports_bf16(gpu_name: str) -> bool:
    upper = gpu_name.upper()
    return "ADA" in upper or not NO_BF16.search(upper)


def peak_tflops(gpu_name: str) -> float | None:
    """The GPU's dense bf16 TFLOPS, or None when the name is not in the table."""
    upper = gpu_name.upper()
    return next((tf for key, tf in PEAK_BF16_TFLOPS if key in upper), None)


@dataclass(frozen=True)
class WorkFlops:
    train: float  # FLOPs at training utilisation
    decode: float  # FLOPs at decoding utilisation


def run_flops(cfg: RunConfig, params: int, tokens: float, generated: float = 0.0) -> WorkFlops:
    """FLOPs of the whole run for ``tokens`` trained tokens and ``generated`` sampled ones."""
    per_token = 6.0 if cfg.adapter.kind == "full" else 4.0
    if cfg.training.gradient_checkpointing:
        per_token += 2.0
    reference = (
        cfg.method in ("dpo", "kto")
        or (cfg.method == "grpo" and cfg.grpo.beta > 0)
        or (cfg.method == "rlhf")
    )  # rlhf: the reward model scores every completion
    if reference:
        per_token += 2.0
    return WorkFlops(train=per_token * params * tokens, decode=2.0 * params * generated)


def run_seconds(work: WorkFlops, gpu_name: str, gpu_count: int = 1) -> float | None:
    """Seconds on ``gpu_count`` GPUs of that type (data parallel: the work divides), or None
    for a GPU whose throughput is unknown."""
    tflops = peak_tflops(gpu_name)
    if tflops is None:
        return None
    flops_per_s = tflops * 1e12 * gpu_count
    return work.train / (flops_per_s * MFU) + work.decode / (flops_per_s * DECODE_MFU)
