"""Peak GPU memory of a run, part by part, from the config and the model's shapes (no torch).

Each part is one function whose docstring gives its formula and where the formula comes from.
The parts follow Hugging Face's "Model training anatomy" (transformers docs, "Anatomy of Model's
Memory": model weights, optimizer states, gradients, forward activations, temporary buffers)
with what this trainer really builds (trainer/modeling.py, TRL 1.16, peft):

- weights load in ``model.dtype``; ``auto`` is bfloat16 on a GPU with bf16 and float32 elsewhere
  (``trainer.modeling.plan_device``);
- LoRA adapters are float32 whatever the base dtype (peft's ``get_peft_model`` upcasts adapter
  weights: ``autocast_adapter_dtype=True``, which TRL keeps outside DeepSpeed ZeRO-3), except
  under QLoRA, where TRL's trainers cast them to bfloat16 after wrapping ("follow the
  recommendations from the original paper": ``sft_trainer.py``, ``_is_quantized_model``);
- QLoRA casts every parameter bitsandbytes did not quantise (embeddings, norms, lm_head) to
  float32 (peft ``prepare_model_for_kbit_training``: "cast all non INT8 parameters to fp32");
- TRL's SFT, DPO, KTO, GRPO and RLOO trainers score tokens with a fused, tiled LM head
  (``trl.trainer.utils.add_fused_lm_head``): the (batch, length, vocab) logits never exist.

Sizes are bytes. ``peak_bytes`` is what ``torch.cuda.max_memory_allocated`` should read; the CUDA
context and the allocator's slack come on top (``RUNTIME_RESERVE_BYTES``, used by the fit check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from trainer.config import RunConfig
from trainer.planner.model_shapes import ModelShapes, TensorSpec

GIB = 2**30
DTYPE_SIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
# CUDA context + cuBLAS workspaces + caching-allocator fragmentation: what nvidia-smi shows
# beyond max_memory_allocated. PyTorch's CUDA context alone is 300-600 MB depending on the
# GPU and CUDA version (PyTorch docs, "CUDA semantics: memory management"); 1 GiB leaves room
# for fragmentation.
RUNTIME_RESERVE_BYTES = 1 * GIB
# trl.kernels.chunked_logprob: tiles of TOKEN_CHUNK_SIZE tokens x _CHUNKED_LOGPROB_CHUNK_SIZE
# vocabulary entries
FUSED_HEAD_TOKENS, FUSED_HEAD_VOCAB = 4096, 32768
# bitsandbytes NF4 with double quantisation: 4 bits per weight + 8-bit absmax per 64 weights +
# a float32 absmax per 256 of those (QLoRA paper, Dettmers et al. 2023, section 3: 0.127 bits)
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
OUTPUT_NAMES = ("lm_head", "embed_out", "output.weight")
EMBED_NAMES = ("embed_tokens", "wte", "wpe", "embed_positions", "word_embeddings")

PartKey = Literal[
    "weights",
    "trainable",
    "gradients",
    "optimizer",
    "activations",
    "extra_models",
    "generation_cache",
]
PART_TITLES: dict[str, str] = {
    "weights": "Weights",
    "trainable": "  of which trainable",
    "gradients": "Gradients",
    "optimizer": "Optimizer state",
    "activations": "Activations",
    "extra_models": "Extra models",
    "generation_cache": "Generation cache",
}


@dataclass(frozen=True)
class Hardware:
    """The device the estimate is for: a CUDA GPU (with or without bfloat16) or a CPU."""

    device: Literal["cuda", "cpu"] = "cuda"
    bf16: bool = True


@dataclass(frozen=True)
class MemoryPart:
    key: str
    bytes: int
    detail: str  # how this figure was made, in words a user can check


@dataclass(frozen=True)
class MemoryEstimate:
    parts: tuple[MemoryPart, ...]
    weights_dtype: str
    precision: str
    seq_len: int
    sequences: int  # sequences in one micro-batch forward (pairs count twice)
    notes: tuple[str, ...] = field(default=())

    def part(self, key: str) -> int:
        return next((p.bytes for p in self.parts if p.key == key), 0)

    @property
    def peak_bytes(self) -> int:
        """Everything allocated at the peak ("trainable" is inside "weights"). Sampling and the
        training forward take turns (TRL's GRPO/RLOO generate a batch, then train on it), so of
        the generation cache and the activations only the larger counts."""
        total = sum(p.bytes for p in self.parts if p.key != "trainable")
        return total - min(self.part("activations"), self.part("generation_cache"))

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GIB


# ----------------------------------------------------------------------------- dtypes


def resolve_precision(cfg: RunConfig, hw: Hardware) -> tuple[str, str]:
    """(weights dtype, mixed precision) exactly as ``trainer.modeling.plan_device`` decides."""
    precision = cfg.training.precision
    if precision == "auto":
        precision = "fp32" if hw.device == "cpu" else ("bf16" if hw.bf16 else "fp16")
    dtype = cfg.model.dtype
    if dtype == "auto":
        dtype = "bfloat16" if hw.device == "cuda" and hw.bf16 else "float32"
    return dtype, precision


def activation_size(weights_dtype: str, precision: str) -> int:
    """Bytes per activation element: 2 under bf16/fp16 autocast or with 16-bit weights, else 4."""
    return 4 if weights_dtype == "float32" and precision == "fp32" else 2


# ------------------------------------------------------------------------------ LoRA


def is_linear_weight(t: TensorSpec) -> bool:
    """A 2-D ``*.weight`` that is not an embedding: an ``nn.Linear`` of the model."""
    return (
        len(t.shape) == 2
        and t.name.endswith(".weight")
        and not any(e in t.name for e in EMBED_NAMES)
    )


def is_output_layer(t: TensorSpec) -> bool:
    return any(t.name.startswith(o) or f".{o}" in t.name for o in OUTPUT_NAMES)


def lora_targets(shapes: ModelShapes, spec: str) -> list[TensorSpec]:
    """The weights peft puts an adapter on (``adapter.target_modules`` as trainer.modeling
    passes it to ``LoraConfig``).

    ``all-linear``: every ``nn.Linear`` but the output layer (peft ``tuners_utils``:
    ``_maybe_include_all_linear_layers`` drops ``get_output_embeddings()``). A list: modules whose
    name is, or ends with ``.`` + , one of the names (peft ``check_target_module_exists``)."""
    linear = [t for t in shapes.tensors if is_linear_weight(t)]
    spec = spec.strip()
    if spec == "all-linear":
        return [t for t in linear if not is_output_layer(t)]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    found = []
    for t in linear:
        module = t.name.removesuffix(".weight")
        if any(module == n or module.endswith("." + n) for n in names):
            found.append(t)
    return found


def lora_tensor_shapes(targets: list[TensorSpec], r: int) -> list[tuple[int, ...]]:
    """LoRA on a Linear with weight (out, in) adds A (r, in) and B (out, r) (Hu et al. 2021,
    "LoRA", section 4.1: W + BA with B in R^{dxr}, A in R^{rxk})."""
    shapes: list[tuple[int, ...]] = []
    for t in targets:
        out_f, in_f = t.shape
        shapes += [(r, in_f), (out_f, r)]
    return shapes


# ---------------------------------------------------------------------- the model's params


@dataclass(frozen=True)
class ParamInventory:
    """The parameters the trainer's model object holds: (shape, bytes per element, trainable)."""

    params: tuple[tuple[tuple[int, ...], int, bool], ...]
    quantised_bytes: int = 0  # bitsandbytes 4/8-bit storage (not ordinary parameters)

    def bytes(self, *, trainable_only: bool = False) -> int:
        return sum(
            math.prod(s) * size for s, size, tr in self.params if tr or not trainable_only
        ) + (0 if trainable_only else self.quantised_bytes)

    def trainable(self) -> list[tuple[tuple[int, ...], int]]:
        return [(s, size) for s, size, tr in self.params if tr]


def param_inventory(cfg: RunConfig, shapes: ModelShapes, weights_dtype: str) -> ParamInventory:
    """Every parameter of the model as the trainer builds it.

    full: every tensor, trainable, in ``weights_dtype``. lora: every tensor frozen in
    ``weights_dtype`` + float32 adapters (trainable). qlora: linear weights of the blocks in
    4-bit NF4 (``NF4_BYTES_PER_WEIGHT``) or 8-bit (1 byte + a float32 scale per output row,
    LLM.int8(), Dettmers et al. 2022), the rest float32, + bfloat16 adapters."""
    size = DTYPE_SIZE[weights_dtype]
    kind = cfg.adapter.kind
    if kind == "full":
        return ParamInventory(tuple((t.shape, size, True) for t in shapes.tensors))
    params: list[tuple[tuple[int, ...], int, bool]] = []
    quantised = 0.0
    for t in shapes.tensors:
        if kind == "qlora" and is_linear_weight(t) and not is_output_layer(t):
            if cfg.adapter.quantization_bits == 4:
                quantised += t.numel * NF4_BYTES_PER_WEIGHT
            else:
                quantised += t.numel + 4 * t.shape[0]
        else:
            params.append((t.shape, 4 if kind == "qlora" else size, False))
    targets = lora_targets(shapes, cfg.adapter.target_modules)
    adapter = adapter_size(cfg)
    params += [(s, adapter, True) for s in lora_tensor_shapes(targets, cfg.adapter.r)]
    return ParamInventory(tuple(params), int(quantised))


def adapter_size(cfg: RunConfig) -> int:
    """Bytes per LoRA adapter element: bfloat16 under QLoRA (TRL casts them), else float32."""
    return 2 if cfg.adapter.kind == "qlora" else 4


# ----------------------------------------------------------------------- the parts


def weight_bytes(inv: ParamInventory) -> int:
    """sum numel x element size over every parameter of the model object (the base model and,
    with LoRA, its adapters), + bitsandbytes storage under QLoRA (HF "Model training anatomy":
    model weights = 4 bytes x params in fp32, 2 in bf16/fp16)."""
    return inv.bytes()


def trainable_bytes(inv: ParamInventory) -> int:
    """sum numel x element size over the parameters that require a gradient."""
    return inv.bytes(trainable_only=True)


def gradient_bytes(inv: ParamInventory) -> int:
    """One gradient per trainable parameter, in the parameter's dtype (``param.grad`` has the
    parameter's dtype and shape; HF "Model training anatomy": gradients = 4 bytes x params in
    fp32). Kept across gradient-accumulation micro-steps, so always counted whole; with a single
    micro-step the Trainer frees them at each step (``zero_grad(set_to_none=True)``) and backward
    frees activations as gradients appear, so the sum errs high by at most this part."""
    return inv.bytes(trainable_only=True)


def optimizer_bytes(inv: ParamInventory, optimizer: str) -> int:
    """Optimizer state per trainable parameter.

    - adamw_torch / adamw_torch_fused: ``exp_avg`` and ``exp_avg_sq``, each ``zeros_like(param)``
      (torch/optim/adamw.py ``_init_group``): 2 x numel x element size (2 x fp32 = 8 bytes per
      parameter for fp32 or LoRA adapters; HF "Model training anatomy": "normal AdamW: 8 bytes").
    - adamw_8bit / paged_adamw_8bit: bitsandbytes keeps both moments in 8 bits with a float32
      absmax per 256-value block (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
      Quantization"): 2 x (1 + 4/256) bytes; tensors under 4096 values stay 32-bit (bnb's
      ``min_8bit_size``).
    - adafactor (transformers' Adafactor, beta1=None): factored second moment, rows + columns
      for a matrix, the full tensor for a vector (Shazeer & Stern 2018), in the parameter dtype.
    - sgd: torch.optim.SGD without momentum keeps no state.
    """
    total = 0.0
    for shape, size in inv.trainable():
        n = math.prod(shape)
        if optimizer in ("adamw_torch", "adamw_torch_fused"):
            total += 2 * n * size
        elif optimizer in ("adamw_8bit", "paged_adamw_8bit"):
            total += 2 * n * (1 + 4 / 256) if n >= 4096 else 2 * n * 4
        elif optimizer == "adafactor":
            total += (shape[0] + shape[1]) * size if len(shape) == 2 else n * size
    return int(total)


@dataclass(frozen=True)
class Batch:
    sequences: int  # sequences in one forward with gradients
    seq_len: int  # tokens per sequence
    scored_len: int  # tokens per sequence that reach the LM head


def lora_input_size(cfg: RunConfig, e: int, precision: str) -> int:
    """Bytes per input element an adapter keeps for backward besides the dropout mask: peft
    casts the input to the adapter's dtype before dropout (``_cast_input_dtype``), and that copy
    is what backward holds, under autocast or not (measured with saved-tensor hooks on
    SmolLM2-135M: 5 bytes per input feature with dropout, fp32 adapters, bf16 autocast)."""
    return adapter_size(cfg)


def layer_activation_bytes(
    shapes: ModelShapes,
    cfg: RunConfig,
    e: int,
    seq_len: int,
    lora: list[TensorSpec],
    lora_e: int | None = None,
) -> float:
    """Bytes one decoder layer saves for backward, per token.

    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models",
    section 4.1) count 34*h + 5*a*s bytes per token per layer for a 16-bit GPT layer. The same
    bookkeeping for a Llama-style layer (RMSNorm, SwiGLU, grouped KV heads, no dropout, SDPA
    attention that saves no sxs matrix) gives, with e bytes per activation:

    - attention: e*(h [normed input] + a*d [q] + 2*kv*d [k, v] + a*d [output]) + 4*h [RMSNorm
      upcasts its input to fp32];
    - MLP: e*(h [normed input] + 4*I [gate, SiLU(gate), up, their product]) + 4*h;
    - full fine-tuning adds e*h per RMSNorm (its weight's gradient needs the normalised input);
    - eager attention adds (4 + e)*a*s (fp32 softmax and its output: Korthikanti's 5as term);
    - LoRA, per adapted Linear with input width k: the dropout mask (1 byte, a bool) + the
      dropped input lora_A's matmul saves, c bytes per input feature, + c*r for A's output
      (peft ``lora.Linear.forward``; c = ``lora_input_size``, the adapter's dtype); without
      dropout, c*k + c*r.
    """
    h, d = shapes.hidden_size, shapes.head_dim
    a, kv, inter = shapes.num_heads, shapes.num_kv_heads, shapes.intermediate_size
    attn = e * (h + 2 * a * d + 2 * kv * d) + 4 * h
    mlp = e * (h + 4 * inter) + 4 * h
    total = float(attn + mlp)
    if cfg.adapter.kind == "full":
        total += 2 * e * h
    if cfg.model.attn_implementation == "eager":
        total += (4 + e) * a * seq_len
    layers = max(1, shapes.num_layers)
    c = lora_e or e
    per_input = 1 + c if cfg.adapter.dropout > 0 else c
    for t in lora:
        total += (per_input * t.shape[1] + c * cfg.adapter.r) / layers
    return total


def head_activation_bytes(shapes: ModelShapes, cfg: RunConfig, e: int, batch: Batch) -> float:
    """The LM head and the loss, for the whole micro-batch.

    Fused head (TRL's SFT, DPO, KTO, GRPO, RLOO: ``add_fused_lm_head``): one float32 tile of
    min(N, 4096) tokens x min(V, 32768) vocabulary entries (trl.kernels.chunked_logprob), plus a
    float32 gradient of the N hidden states in backward, plus (full fine-tuning) a float32
    gradient buffer of the head's weight, N = scored tokens. ORPO computes the full logits:
    N*V*(e + 4 + 4) (the logits, their float32 upcast, log-softmax saved for backward; HF
    ``ForCausalLMLoss``). Both add the final RMSNorm: N*(4 + e)*h."""
    h, v = shapes.hidden_size, shapes.vocab_size
    scored = batch.sequences * batch.scored_len
    norm = batch.sequences * batch.seq_len * (4 + e) * h
    if cfg.method == "orpo":
        return norm + scored * v * (e + 8)
    tile = min(scored, FUSED_HEAD_TOKENS) * min(v, FUSED_HEAD_VOCAB) * 4
    grad_hidden = scored * h * 4
    grad_weight = v * h * 4 if cfg.adapter.kind == "full" else 0
    return norm + tile + grad_hidden + grad_weight


def activation_bytes(
    shapes: ModelShapes,
    cfg: RunConfig,
    e: int,
    batch: Batch,
    lora: list[TensorSpec],
    precision: str = "bf16",
) -> int:
    """Activations of one micro-batch forward, held until its backward.

    Without checkpointing: L x (one layer's bytes per token) x tokens + the head. With gradient
    checkpointing (transformers checkpoints each decoder layer, non-reentrant): each layer keeps
    only its input, e*h per token (Korthikanti et al. 2022, section 4.2, "full activation
    recomputation": 2sbhL in 16-bit), and one layer's activations exist again while it is
    recomputed during backward; + the head."""
    tokens = batch.sequences * batch.seq_len
    lora_e = lora_input_size(cfg, e, precision)
    layer = layer_activation_bytes(shapes, cfg, e, batch.seq_len, lora, lora_e)
    layers = shapes.num_layers
    if cfg.training.gradient_checkpointing:
        body = layers * e * shapes.hidden_size * tokens + layer * tokens
    else:
        body = layers * layer * tokens
    return int(body + head_activation_bytes(shapes, cfg, e, batch))


def extra_model_bytes(cfg: RunConfig, base_weights: int, reward_weights: int) -> int:
    """Models held beside the one being trained.

    - DPO and KTO: a frozen reference copy of the base model unless LoRA, whose reference is the
      same model with the adapter switched off (TRL ``DPOTrainer``: "If PEFT is used, the
      reference model is not needed"); GRPO and RLOO only when their KL ``beta`` > 0, on the
      same terms. The copy has the base's dtype (and quantisation).
    - rlhf: the reward model (a sequence classifier on the reward model's or the base's weights,
      loaded unquantised in the weights dtype; trainer.modeling.load_reward_model)."""
    full = cfg.adapter.kind == "full"
    if cfg.method in ("dpo", "kto") and full:
        return base_weights
    if cfg.method == "grpo" and cfg.grpo.beta > 0 and full:
        return base_weights
    if cfg.method == "rlhf":
        return reward_weights + (base_weights if cfg.rlhf.beta > 0 and full else 0)
    return 0


def generation_cache_bytes(shapes: ModelShapes, e: int, completions: int, length: int) -> int:
    """KV cache of sampling (GRPO, rlhf): 2 (K and V) x L x kv heads x head dim x e bytes per
    token (the standard KV-cache size, e.g. Pope et al. 2022, "Efficiently Scaling Transformer
    Inference", section 2), for every completion generated at once x (prompt + completion)."""
    per_token = 2 * shapes.num_layers * shapes.num_kv_heads * shapes.head_dim * e
    return per_token * completions * length


# ----------------------------------------------------------------------- the whole


def method_batch(cfg: RunConfig, seq_len: int) -> Batch:
    """What one micro-batch forward holds for the method.

    DPO and ORPO forward chosen and rejected together (2 x batch sequences). GRPO/rlhf train on
    prompt + completion with only the completion scored; ``seq_len`` is then the prompt cap."""
    b = cfg.training.per_device_train_batch_size
    if cfg.method in ("dpo", "orpo"):
        return Batch(2 * b, seq_len, seq_len)
    if cfg.method in ("grpo", "rlhf"):
        gen = cfg.grpo if cfg.method == "grpo" else cfg.rlhf
        return Batch(b, seq_len + gen.max_completion_length, gen.max_completion_length)
    return Batch(b, seq_len, seq_len)


def estimate_memory(
    cfg: RunConfig,
    shapes: ModelShapes,
    hw: Hardware | None = None,
    *,
    seq_len: int | None = None,
    reward_shapes: ModelShapes | None = None,
) -> MemoryEstimate:
    """Peak memory of training ``cfg`` on ``hw`` (a CUDA GPU with bf16 by default).

    ``seq_len``: tokens per sequence in the longest batch (default ``training.max_length``,
    the worst case)."""
    hw = hw or Hardware()
    weights_dtype, precision = resolve_precision(cfg, hw)
    e = activation_size(weights_dtype, precision)
    length = seq_len or cfg.training.max_length
    inv = param_inventory(cfg, shapes, weights_dtype)
    lora = [] if cfg.adapter.kind == "full" else lora_targets(shapes, cfg.adapter.target_modules)
    batch = method_batch(cfg, length)
    notes: list[str] = []
    base = weight_bytes(inv)
    if cfg.adapter.kind != "full":
        frozen_only = ParamInventory(tuple(p for p in inv.params if not p[2]), inv.quantised_bytes)
        base = frozen_only.bytes()
    reward = 0
    if cfg.method == "rlhf":
        rshapes = reward_shapes or shapes
        reward = rshapes.num_parameters * DTYPE_SIZE[weights_dtype]
        notes.append(
            "rlhf: the reward-model phase before the policy phase is not estimated separately"
        )
    cache = 0
    if cfg.method in ("grpo", "rlhf"):
        # TRL generates for a whole generation batch: micro-batch x gradient accumulation
        completions = (
            cfg.training.per_device_train_batch_size * cfg.training.gradient_accumulation_steps
        )
        cache = generation_cache_bytes(shapes, e, completions, batch.seq_len)
        notes.append(
            f"{cfg.method}: prompts taken as {length} tokens (the longest row, at most "
            "training.max_length); sampling and training take turns, the larger of the "
            "generation cache and the activations counts"
        )
    if lora == [] and cfg.adapter.kind != "full":
        notes.append(
            f"adapter.target_modules {cfg.adapter.target_modules!r} matches no linear layer "
            "of the model: nothing would train"
        )
    parts = (
        MemoryPart("weights", weight_bytes(inv), _weights_detail(cfg, weights_dtype, shapes)),
        MemoryPart(
            "trainable",
            trainable_bytes(inv),
            "every weight"
            if cfg.adapter.kind == "full"
            else f"LoRA adapters, {'bfloat16' if adapter_size(cfg) == 2 else 'float32'}",
        ),
        MemoryPart("gradients", gradient_bytes(inv), "one per trainable weight"),
        MemoryPart(
            "optimizer", optimizer_bytes(inv, cfg.training.optimizer), cfg.training.optimizer
        ),
        MemoryPart(
            "activations",
            activation_bytes(shapes, cfg, e, batch, lora, precision),
            f"{batch.sequences} x {batch.seq_len} tokens"
            + (", checkpointed" if cfg.training.gradient_checkpointing else ""),
        ),
        MemoryPart("extra_models", extra_model_bytes(cfg, base, reward), _extra_detail(cfg)),
        MemoryPart("generation_cache", cache, "KV cache while sampling" if cache else ""),
    )
    return MemoryEstimate(parts, weights_dtype, precision, length, batch.sequences, tuple(notes))


def _weights_detail(cfg: RunConfig, dtype: str, shapes: ModelShapes) -> str:
    count = f"{shapes.num_parameters / 1e6:,.1f}M params"
    if cfg.adapter.kind == "qlora":
        return f"{count}, {cfg.adapter.quantization_bits}-bit base"
    return f"{count}, {dtype}"


def _extra_detail(cfg: RunConfig) -> str:
    full = cfg.adapter.kind == "full"
    if cfg.method in ("dpo", "kto"):
        return "reference model" if full else "none: LoRA off = reference"
    if cfg.method == "rlhf":
        return "reward model"
    if cfg.method == "grpo" and cfg.grpo.beta > 0:
        return "reference model" if full else "none: LoRA off = reference"
    return ""
