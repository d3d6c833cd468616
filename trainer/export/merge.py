"""A trained run as a plain model folder: the adapter merged into its base, or a full model copied.

The base is loaded unquantised (float32 unless its config or the caller says float16/bfloat16),
never in 4 or 8 bits: under QLoRA merging into quantised weights would lose the adapter's detail,
so a QLoRA job merges into the same full-precision base a LoRA job would.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.export import ExportError
from trainer.export.progress import SILENT, Progress

ADAPTER_CONFIG = "adapter_config.json"
DTYPES = ("float32", "float16", "bfloat16")
# a full fine-tune's output folder: the files that make up the model (no checkpoints, logs)
MODEL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


@dataclass(frozen=True)
class TrainedModel:
    """What a finished job left: ``folder`` holds an adapter (then ``base`` is the model it was
    trained on, made loadable) or a whole model (``base`` None)."""

    folder: Path
    base: str | None
    revision: str | None = None
    trust_remote_code: bool = False

    @property
    def is_adapter(self) -> bool:
        return self.base is not None


def is_adapter_folder(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).is_file()


def trained_model(
    folder: Path,
    base: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> TrainedModel:
    """The model in a job's output ``folder``; ``base`` is the job's ``model.name_or_path``
    already resolved to a loadable place (a folder or a Hub id)."""
    if not folder.is_dir():
        raise ExportError(
            f"{folder}: the job's output folder does not exist",
            "the run may have been moved or deleted; export needs its adapter or model files",
        )
    if is_adapter_folder(folder):
        return TrainedModel(folder, base, revision, trust_remote_code)
    if not (folder / "config.json").is_file():
        raise ExportError(
            f"{folder}: holds neither an adapter ({ADAPTER_CONFIG}) nor a model (config.json)",
            "a run saves these when it completes; a cancelled run has only checkpoints: "
            "export one of its checkpoint-N folders",
        )
    return TrainedModel(folder, None, revision, trust_remote_code)


def default_dtype(model_folder: str) -> str:
    """The dtype the base was published in when that is a float type we can save, else float32."""
    config = Path(model_folder) / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32"
    name = data.get("dtype") or data.get("torch_dtype")
    return name if name in DTYPES else "float32"


def load_merged(
    base: str,
    adapter_folder: Path,
    *,
    dtype: str = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """The base model with the adapter merged in (a plain transformers model, in memory)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    chosen = default_dtype(base) if dtype == "auto" else dtype
    model = AutoModelForCausalLM.from_pretrained(
        base,
        dtype=getattr(torch, chosen),
        revision=revision,
        trust_remote_code=trust_remote_code,
    )
    return PeftModel.from_pretrained(model, str(adapter_folder)).merge_and_unload()


def _tokenizer_source(model: TrainedModel) -> str:
    # the run saved its tokenizer (pad token, chat template as trained) next to the adapter
    if (model.folder / "tokenizer_config.json").is_file() or model.base is None:
        return str(model.folder)
    return model.base


def save_merged(
    model: TrainedModel,
    out_dir: Path,
    *,
    dtype: str = "auto",
    progress: Progress = SILENT,
) -> Path:
    """Write the merged (or, for a full fine-tune, copied) model with its tokenizer, chat
    template and generation config into ``out_dir``; return ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if model.base is None:
        progress.stage("copy", f"copying the model from {model.folder}")
        _copy_model_files(model.folder, out_dir)
        return out_dir
    from transformers import AutoTokenizer, GenerationConfig

    progress.stage("merge", f"merging the adapter in {model.folder} into {model.base}")
    merged = load_merged(
        model.base,
        model.folder,
        dtype=dtype,
        revision=model.revision,
        trust_remote_code=model.trust_remote_code,
    )
    progress.stage("save", f"saving the merged model to {out_dir}")
    merged.save_pretrained(str(out_dir))
    tokenizer = AutoTokenizer.from_pretrained(
        _tokenizer_source(model), trust_remote_code=model.trust_remote_code
    )
    tokenizer.save_pretrained(str(out_dir))
    try:
        generation = GenerationConfig.from_pretrained(model.base, revision=model.revision or "main")
    except OSError:  # the base has none: the model's own defaults were saved with it
        generation = None
    if generation is not None:
        generation.save_pretrained(str(out_dir))
    return out_dir


def _copy_model_files(source: Path, out_dir: Path) -> None:
    copied = 0
    for pattern in MODEL_FILE_PATTERNS:
        for path in sorted(source.glob(pattern)):
            shutil.copy2(path, out_dir / path.name)
            copied += 1
    if not any(out_dir.glob("*.safetensors")):
        raise ExportError(
            f"{source}: no *.safetensors weights to export",
            "Tunedeck saves safetensors; a folder from elsewhere may hold pytorch_model.bin: "
            "load and save it with transformers first",
        )
