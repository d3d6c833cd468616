"""Which model a job left, whether it fits, and loading it for chat.

A job's output folder (or one of its ``checkpoint-N`` folders) holds a LoRA/QLoRA adapter
(``adapter_config.json``: loaded on top of the run's base model) or a whole model (a full
fine-tune). ``--base`` loads the base model alone, for side-by-side comparison. The tokenizer is
the one the run trained with: ``trainer.modeling.load_tokenizer`` on the folder the run saved it
to (pad token and ``model.chat_template`` applied the same way), else on the base model.

Device: the GPU when there is one, else the CPU. Before loading, the weights' size (from the
safetensors headers, through the planner's shape reader) is compared with the free memory of
the device; a model that cannot fit is refused with the numbers, and one that does not fit the
GPU's free memory but fits in RAM runs on the CPU with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.chat import ChatError
from trainer.config import RunConfig

ADAPTER_CONFIG = "adapter_config.json"
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# beyond the weights: activations, the KV cache of a chat and the runtime's own buffers
OVERHEAD_FACTOR = 1.2
OVERHEAD_BYTES = 256 * 2**20
GIB = 2**30


@dataclass(frozen=True)
class ModelChoice:
    """``folder``: the adapter or full model to load (None: the base alone); ``base``: the base
    model made loadable (None for a full fine-tune); ``tokenizer_from``: where the tokenizer is
    read."""

    label: str
    folder: Path | None
    base: str | None
    tokenizer_from: str

    @property
    def is_adapter(self) -> bool:
        return self.folder is not None and self.base is not None


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" or "cuda"
    dtype: str  # "float32", "bfloat16" or "float16"
    quantized: bool = False  # a QLoRA job's base in 4/8 bits, as it trained
    note: str = ""


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file()


def choose_model(
    cfg: RunConfig,
    run_dir: Path,
    *,
    checkpoint: int | None = None,
    base_only: bool = False,
    base_dir: Path | None = None,
) -> ModelChoice:
    from trainer.modeling import resolve_model_path

    name = cfg.model.name_or_path
    if base_only:
        base = resolve_model_path(name, base_dir)
        tok = str(run_dir) if _has_tokenizer(run_dir) else base
        return ModelChoice(f"base model {name}", None, base, tok)
    folder = run_dir / f"checkpoint-{checkpoint}" if checkpoint is not None else run_dir
    what = f"checkpoint {checkpoint}" if checkpoint is not None else "the trained model"
    if not folder.is_dir():
        raise ChatError(
            f"{folder}: the folder of {what} does not exist",
            "the run may have been moved or deleted, or has not saved it yet; "
            "choose another checkpoint",
        )
    if (folder / ADAPTER_CONFIG).is_file():
        base = resolve_model_path(name, base_dir)
        tok = next((str(f) for f in (folder, run_dir) if _has_tokenizer(f)), base)
        return ModelChoice(f"{name} + adapter ({what})", folder, base, tok)
    if (folder / "config.json").is_file():
        tok = str(folder) if _has_tokenizer(folder) else resolve_model_path(name, base_dir)
        return ModelChoice(f"{name} fine-tuned ({what})", folder, None, tok)
    raise ChatError(
        f"{folder}: holds neither an adapter ({ADAPTER_CONFIG}) nor a model (config.json)",
        "a run saves these when it completes; a cancelled run has only checkpoints: "
        "choose one of its checkpoint-N folders",
    )


def weights_bytes(choice: ModelChoice, cfg: RunConfig, dtype: str) -> int | None:
    """The loaded weights' size in ``dtype`` (adapter included); None when it cannot be told
    without downloading (a Hub id: the load itself will say)."""
    from trainer.planner.model_shapes import ModelShapeError, read_model_shapes

    source = choice.base if choice.base is not None else str(choice.folder)
    if not Path(source).is_dir():  # a Hub id: its download is the load's business
        return None
    try:
        shapes = read_model_shapes(source, revision=cfg.model.revision)
    except (ModelShapeError, OSError, ValueError):
        return None
    total = shapes.num_parameters * DTYPE_BYTES[dtype]
    if choice.is_adapter and choice.folder is not None:
        adapter = choice.folder / "adapter_model.safetensors"
        if adapter.is_file():
            total += adapter.stat().st_size
    return total


def free_bytes(device: str) -> int:
    import torch

    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil  # type: ignore[import-untyped]  # accelerate's dependency; no stubs here

    return int(psutil.virtual_memory().available)


def needed_bytes(weights: int) -> int:
    return int(weights * OVERHEAD_FACTOR) + OVERHEAD_BYTES


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GB"


def _cuda_dtype(cfg: RunConfig) -> str:
    import torch

    if cfg.model.dtype != "auto":
        return cfg.model.dtype
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def place(choice: ModelChoice, cfg: RunConfig, requested: str = "auto") -> Placement:
    """Where the model runs and in what precision; ChatError when it fits nowhere."""
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise ChatError("--device cuda: no CUDA GPU is visible", "use --device auto or cpu")
    cpu = Placement("cpu", cfg.model.dtype if cfg.model.dtype != "auto" else "float32")
    if not cuda or requested == "cpu":
        _check_fits(choice, cfg, cpu)
        return cpu
    quantized = (
        cfg.adapter.kind == "qlora"
        and choice.is_adapter
        and importlib.util.find_spec("bitsandbytes") is not None
    )
    gpu = Placement("cuda", _cuda_dtype(cfg), quantized=quantized)
    weights = weights_bytes(choice, cfg, gpu.dtype)
    if quantized and weights is not None:
        weights = weights * (cfg.adapter.quantization_bits or 4) // 16
    if weights is None or needed_bytes(weights) <= free_bytes("cuda"):
        return gpu
    if requested == "auto":
        try:
            _check_fits(choice, cfg, cpu)
        except ChatError:
            pass
        else:
            return Placement(
                "cpu",
                cpu.dtype,
                note=f"the model needs about {_gib(needed_bytes(weights))} and the GPU has "
                f"{_gib(free_bytes('cuda'))} free: it runs on the CPU (slower)",
            )
    raise _does_not_fit(choice, gpu, weights)


def _check_fits(choice: ModelChoice, cfg: RunConfig, placement: Placement) -> None:
    weights = weights_bytes(choice, cfg, placement.dtype)
    if weights is not None and needed_bytes(weights) > free_bytes(placement.device):
        raise _does_not_fit(choice, placement, weights)


def _does_not_fit(choice: ModelChoice, placement: Placement, weights: int) -> ChatError:
    where = "the GPU" if placement.device == "cuda" else "this computer's memory"
    return ChatError(
        f"{choice.label} does not fit: it needs about {_gib(needed_bytes(weights))} "
        f"({_gib(weights)} of {placement.dtype} weights) and {where} has "
        f"{_gib(free_bytes(placement.device))} free",
        "close other programs (or other Try tabs) that hold memory, or try the model on a "
        "computer with more memory; an exported GGUF in q8_0 needs about a quarter of float32",
    )


def load_tokenizer_for(choice: ModelChoice, cfg: RunConfig) -> Any:
    """The tokenizer exactly as the run trained with it (trainer.modeling.load_tokenizer)."""
    from trainer.modeling import load_tokenizer

    return load_tokenizer(cfg, choice.tokenizer_from)


def load_model(choice: ModelChoice, cfg: RunConfig, placement: Placement) -> Any:
    """The model in eval mode on its device; ChatError when memory runs out while loading."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.modeling import DevicePlan, quantization_config

    kwargs: dict[str, Any] = {
        "dtype": getattr(torch, placement.dtype),
        "trust_remote_code": cfg.model.trust_remote_code,
    }
    if cfg.model.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    if placement.quantized:
        precision = "bf16" if placement.dtype == "bfloat16" else "fp16"
        plan = DevicePlan("cuda", precision, placement.dtype)
        kwargs["quantization_config"] = quantization_config(cfg, plan)
        kwargs["device_map"] = {"": 0}
    source = choice.base if choice.base is not None else str(choice.folder)
    if choice.base is not None:
        kwargs["revision"] = cfg.model.revision
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if choice.is_adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(choice.folder))  # type: ignore[assignment]
        if not placement.quantized:
            model = model.to(placement.device)  # type: ignore[arg-type]  # a device string is fine
    except (torch.cuda.OutOfMemoryError, MemoryError) as err:
        raise ChatError(
            f"{choice.label} ran out of memory while loading on {placement.device}: {err}",
            "close other programs that hold memory, or use --device cpu",
        ) from err
    model.eval()  # type: ignore[no-untyped-call]  # peft leaves eval() unannotated
    return model
