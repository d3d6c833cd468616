"""Loading the model and tokenizer a run trains: where they come from, on what device, in what
precision, with which adapter.

The environment check (CUDA, bitsandbytes, TensorBoard) lives here rather than in config.py,
which stays pure so the desktop can import it; ``environment_problems`` returns the same
"field.path: what to do" lines as a ConfigError so that `validate` and the run report them alike.
Heavy imports stay inside functions.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, RunConfig
from trainer.tiny_model import BUILTIN_PREFIX, builtin_model_folder

QLORA_NEEDS = "adapter.kind: QLoRA needs a CUDA GPU and the bitsandbytes package"


@dataclass(frozen=True)
class DevicePlan:
    """Where the run trains and in what precision, decided once from config and hardware."""

    device: str  # "cpu" or "cuda"
    precision: str  # "fp32", "bf16" or "fp16": mixed precision for training
    weights_dtype: str  # "float32", "bfloat16" or "float16": the dtype weights are loaded in

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"


def cache_dir() -> Path:
    """Tunedeck's cache folder (built-in models): TUNEDECK_CACHE_DIR or ~/.cache/tunedeck."""
    env = os.environ.get("TUNEDECK_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tunedeck"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def plan_device(cfg: RunConfig) -> DevicePlan:
    """Resolve runtime.device, training.precision and model.dtype against this machine."""
    cuda = _cuda_available()
    device = (
        "cuda" if cfg.runtime.device == "cuda" or (cfg.runtime.device == "auto" and cuda) else "cpu"
    )
    precision = cfg.training.precision
    if precision == "auto":
        precision = "fp32" if device == "cpu" else ("bf16" if _cuda_bf16() else "fp16")
    dtype = cfg.model.dtype
    if dtype == "auto":
        # fp16 mixed precision needs fp32 master weights (the grad scaler refuses fp16 ones)
        dtype = "bfloat16" if device == "cuda" and _cuda_bf16() else "float32"
    return DevicePlan(device=device, precision=precision, weights_dtype=dtype)


def environment_problems(cfg: RunConfig) -> list[str]:
    """What this machine lacks for the config, one "field: what to do" line each."""
    problems: list[str] = []
    cuda = _cuda_available()
    if cfg.runtime.device == "cuda" and not cuda:
        problems.append(
            "runtime.device: 'cuda' was asked for but no CUDA GPU is visible; use 'auto' or 'cpu'"
        )
    on_gpu = cuda and cfg.runtime.device != "cpu"
    if cfg.adapter.kind == "qlora" and not (on_gpu and _has_package("bitsandbytes")):
        problems.append(
            QLORA_NEEDS + "; choose 'lora' or 'full' here, or install bitsandbytes on a GPU machine"
        )
    if cfg.training.optimizer in ("adamw_8bit", "paged_adamw_8bit") and not (
        on_gpu and _has_package("bitsandbytes")
    ):
        problems.append(
            "training.optimizer: 8-bit optimisers need a CUDA GPU and the bitsandbytes package; "
            "use adamw_torch"
        )
    if cfg.training.precision == "fp16" and not on_gpu:
        problems.append("training.precision: fp16 needs a CUDA GPU; use 'auto' or 'fp32' on a CPU")
    if cfg.training.precision == "bf16" and on_gpu and not _cuda_bf16():
        problems.append(
            "training.precision: this GPU has no bfloat16 support; use 'auto' or 'fp16'"
        )
    if cfg.logging.tensorboard and not (
        _has_package("tensorboard") or _has_package("tensorboardX")
    ):
        problems.append(
            "logging.tensorboard: needs the tensorboard package (pip install tensorboard), "
            "or turn it off"
        )
    if cfg.model.attn_implementation == "flash_attention_2" and not (
        on_gpu and _has_package("flash_attn")
    ):
        problems.append(
            "model.attn_implementation: flash_attention_2 needs a CUDA GPU and the flash-attn "
            "package; use 'auto'"
        )
    return problems


def check_environment(cfg: RunConfig) -> None:
    problems = environment_problems(cfg)
    if problems:
        raise ConfigError(problems)


def resolve_model_path(name: str, base_dir: Path | None = None) -> str:
    """A loadable location for ``model.name_or_path``: a built-in is built (once) in the cache;
    a relative folder that exists is made absolute; anything else is taken as a Hub id."""
    if name.startswith(BUILTIN_PREFIX):
        try:
            return str(builtin_model_folder(name, cache_dir()))
        except ValueError as err:
            raise ConfigError([f"model.name_or_path: {err}"]) from None
    path = Path(name).expanduser()
    for candidate in (path, (base_dir / path) if base_dir and not path.is_absolute() else None):
        if candidate is not None and candidate.is_dir():
            return str(candidate.resolve())
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ConfigError(
            [f"model.name_or_path: folder {name!r} does not exist (give a folder or a Hub id)"]
        )
    return name


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_tokenizer(cfg: RunConfig, path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
    )
    if cfg.model.chat_template:
        tokenizer.chat_template = cfg.model.chat_template
    if tokenizer.pad_token is None:
        # batches need padding; the eos token is the usual stand-in and is masked by attention
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(cfg: RunConfig, plan: DevicePlan) -> Any | None:
    """BitsAndBytesConfig for QLoRA; None otherwise."""
    if cfg.adapter.kind != "qlora":
        return None
    if not (_cuda_available() and _has_package("bitsandbytes")):
        raise ConfigError([QLORA_NEEDS + "; choose 'lora' or 'full' on this machine"])
    from transformers import BitsAndBytesConfig

    # transformers leaves BitsAndBytesConfig.__init__ unannotated (it takes **kwargs)
    if cfg.adapter.quantization_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    compute = _torch_dtype("bfloat16" if plan.precision == "bf16" else "float16")
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def _model_kwargs(cfg: RunConfig, plan: DevicePlan) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "revision": cfg.model.revision,
        "trust_remote_code": cfg.model.trust_remote_code,
        "dtype": _torch_dtype(plan.weights_dtype),
    }
    if cfg.model.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    quant = quantization_config(cfg, plan)
    if quant is not None:
        kwargs["quantization_config"] = quant
        # quantised weights are placed at load time, on this process's GPU
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return kwargs


def load_causal_lm(cfg: RunConfig, path: str, plan: DevicePlan) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, **_model_kwargs(cfg, plan))
    if cfg.adapter.kind == "qlora":
        from peft import prepare_model_for_kbit_training

        # peft leaves this function unannotated
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=cfg.training.gradient_checkpointing
        )
    return model


def load_reward_model(cfg: RunConfig, path: str, plan: DevicePlan, pad_token_id: int) -> Any:
    """A sequence classifier with one output (the reward) on the given base or reward model."""
    from transformers import AutoModelForSequenceClassification

    kwargs = _model_kwargs(cfg, plan)
    kwargs.pop("quantization_config", None)  # the reward model is trained/kept in full precision
    kwargs.pop("device_map", None)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
    model.config.pad_token_id = pad_token_id
    return model


def lora_config(cfg: RunConfig, task_type: str = "CAUSAL_LM") -> Any | None:
    """peft LoraConfig for LoRA/QLoRA; None for full fine-tuning."""
    if cfg.adapter.kind == "full":
        return None
    from peft import LoraConfig

    spec = cfg.adapter.target_modules.strip()
    targets: str | list[str] = (
        spec if spec == "all-linear" else [t.strip() for t in spec.split(",") if t.strip()]
    )
    return LoraConfig(
        r=cfg.adapter.r,
        lora_alpha=cfg.adapter.alpha,
        lora_dropout=cfg.adapter.dropout,
        target_modules=targets,
        task_type=task_type,
        # a reward model's head starts random: it must train in full, not through an adapter
        modules_to_save=["score"] if task_type == "SEQ_CLS" else None,
    )


def set_torch_threads(cfg: RunConfig) -> None:
    """runtime.torch_threads, else TUNEDECK_TORCH_THREADS, else torch's default.

    With two threads on a busy two-core machine, tiny steps ran about 60 times slower."""
    import torch

    threads = cfg.runtime.torch_threads
    if threads is None and os.environ.get("TUNEDECK_TORCH_THREADS", "").isdigit():
        threads = int(os.environ["TUNEDECK_TORCH_THREADS"])
    if threads:
        torch.set_num_threads(threads)
