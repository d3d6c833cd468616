"""The sections every run has: model, dataset, hyperparameters, adapter, evaluation, checkpoints,
logging, output and runtime."""

from __future__ import annotations

from typing import Literal

from trainer.config.fields import DatasetFormat, Section, option


class ModelSection(Section):
    name_or_path: str = option(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        title="Model",
        description="Hugging Face Hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), a local folder "
        "holding config.json, the weights and the tokenizer, or 'builtin:tiny-llama' (a tiny "
        "random model built on the spot, for demos and tests).",
        basic=True,
        widget="model",
        min_length=1,
    )
    revision: str | None = option(
        None, description="Hub branch, tag or commit to load; empty for the default branch."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = option(
        "auto",
        title="Weights dtype",
        description="Precision the weights are loaded in. 'auto' uses bfloat16 on GPUs that "
        "support it and float32 on a CPU.",
    )
    trust_remote_code: bool = option(
        False,
        description="Run Python code shipped with the model repository. Only for models you trust.",
    )
    chat_template: str | None = option(
        None,
        description="Jinja chat template to use instead of the tokenizer's own (needed for base "
        "models that ship none when the data is chat-formatted).",
        widget="multiline",
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = option(
        "auto", description="Attention kernel; 'auto' lets transformers choose."
    )


# ------------------------------------------------------------------------------------- dataset


class DatasetSection(Section):
    path: str = option(
        "resources/datasets/demo-chat.jsonl",
        title="Dataset",
        description="Local file (JSONL, JSON, CSV, Parquet), an http(s) URL to one, or a Hugging "
        "Face dataset id.",
        basic=True,
        widget="dataset",
        min_length=1,
    )
    format: DatasetFormat = option(
        "auto",
        description="Row format. 'auto' detects it from every row and fails on a mix.",
        basic=True,
    )
    split: str = option("train", description="Split to read from a Hub dataset.")
    subset: str | None = option(None, description="Configuration name of a Hub dataset.")
    eval_path: str | None = option(
        None,
        description="Separate evaluation file or Hub id; when empty, eval_fraction of the "
        "training rows is held out.",
        widget="dataset",
    )
    eval_fraction: float = option(
        0.1,
        description="Share of rows held out for evaluation when there is no eval_path "
        "(0 disables evaluation).",
        ge=0.0,
        le=0.5,
    )
    max_samples: int | None = option(
        None, description="Use at most this many rows (after shuffling); empty for all.", ge=1
    )
    shuffle: bool = option(True, description="Shuffle rows (with the run's seed) before splitting.")
    seed: int = option(42, description="Seed for shuffling and the train/eval split.", ge=0)


# ------------------------------------------------------------------------------------ training


class TrainingSection(Section):
    num_train_epochs: float = option(
        1.0, title="Epochs", description="Passes over the training rows.", basic=True, gt=0
    )
    max_steps: int | None = option(
        None,
        description="Stop after this many optimiser steps (overrides epochs); empty to train "
        "for the given epochs.",
        basic=True,
        ge=1,
    )
    learning_rate: float = option(
        2e-4,
        description="Peak learning rate. The default depends on the method and on LoRA vs full "
        "fine-tuning.",
        basic=True,
        gt=0,
        le=1,
    )
    per_device_train_batch_size: int = option(
        2, title="Batch size", description="Rows per device per step.", basic=True, ge=1, le=4096
    )
    gradient_accumulation_steps: int = option(
        1,
        description="Steps whose gradients add up before one optimiser step.",
        ge=1,
        le=4096,
    )
    per_device_eval_batch_size: int = option(
        2, description="Rows per device per evaluation step.", ge=1, le=4096
    )
    max_length: int = option(
        1024,
        title="Max sequence length",
        description="Tokens per row; longer rows are truncated.",
        basic=True,
        ge=8,
        le=1_048_576,
    )
    warmup_steps: int = option(0, description="Linear warm-up steps.", ge=0)
    warmup_ratio: float = option(
        0.0,
        description="Warm-up as a share of all steps (ignored when warmup_steps > 0).",
        ge=0,
        le=1,
    )
    lr_scheduler_type: Literal[
        "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"
    ] = option("cosine", description="Learning-rate schedule after warm-up.")
    weight_decay: float = option(0.0, description="AdamW weight decay.", ge=0, le=1)
    max_grad_norm: float = option(
        1.0, description="Clip gradients to this norm (0 disables clipping).", ge=0
    )
    optimizer: Literal[
        "adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adamw_8bit", "paged_adamw_8bit"
    ] = option("adamw_torch", description="Optimiser; the 8-bit ones need bitsandbytes and a GPU.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto",
        description="Mixed precision for training; 'auto' is bf16 on GPUs that support it, "
        "fp16 on older GPUs and fp32 on a CPU.",
    )
    gradient_checkpointing: bool = option(
        False, description="Recompute activations in the backward pass: less memory, ~30% slower."
    )
    seed: int = option(42, description="Seed for weights initialisation and data order.", ge=0)


# -------------------------------------------------------------------------------- adapter/peft


class AdapterSection(Section):
    kind: Literal["lora", "qlora", "full"] = option(
        "lora",
        title="Fine-tuning type",
        description="LoRA trains small adapter matrices; QLoRA does so on a 4/8-bit quantised "
        "model (needs a CUDA GPU and bitsandbytes); full trains every weight.",
        basic=True,
    )
    r: int = option(
        16, title="LoRA rank", description="Rank of the LoRA matrices.", basic=True, ge=1, le=1024
    )
    alpha: int = option(
        32, title="LoRA alpha", description="LoRA scaling numerator.", ge=1, le=4096
    )
    dropout: float = option(
        0.05, title="LoRA dropout", description="Dropout on LoRA inputs.", ge=0, lt=1
    )
    target_modules: str = option(
        "all-linear",
        description="Modules that get adapters: 'all-linear' or a comma-separated list of "
        "module names (q_proj,v_proj).",
        min_length=1,
    )
    quantization_bits: Literal[4, 8] = option(
        4, description="Bits of the frozen base weights for QLoRA."
    )
    merge_after_training: bool = option(
        False, description="Also save the base model with the adapter merged into it."
    )


# ------------------------------------------------------------------------------- eval/ckpt/logs


class EvaluationSection(Section):
    strategy: Literal["no", "steps", "epoch"] = option(
        "steps", description="When to evaluate on the held-out rows."
    )
    eval_steps: int = option(50, description="Evaluate every this many steps.", ge=1)


class CheckpointSection(Section):
    save_strategy: Literal["no", "steps", "epoch"] = option(
        "steps", description="When to write a checkpoint."
    )
    save_steps: int = option(100, description="Write a checkpoint every this many steps.", ge=1)
    save_total_limit: int | None = option(
        2, description="Keep at most this many checkpoints (oldest deleted first).", ge=1
    )
    resume_from_checkpoint: str | None = option(
        None,
        description="Continue from a checkpoint folder, or 'latest' for the newest in the "
        "output folder.",
        widget="path",
    )


class LoggingSection(Section):
    logging_steps: int = option(
        5, description="Report metrics every this many optimiser steps.", ge=1
    )
    tensorboard: bool = option(
        False, description="Also write TensorBoard logs to the output folder."
    )
    loss_spike_factor: float = option(
        3.0,
        description="Raise a loss_spike alert when a loss exceeds this multiple of its recent "
        "average.",
        gt=1,
    )


class OutputSection(Section):
    output_dir: str = option(
        "outputs/{name}",
        description="Folder for checkpoints, the final adapter or model, and events.jsonl. "
        "'{name}' is replaced with the run name.",
        basic=True,
        widget="path",
        min_length=1,
    )
    push_to_hub: bool = option(False, description="Push the result to the Hugging Face Hub.")
    hub_repo: str | None = option(
        None, description="Hub repository to push to, as owner/name.", pattern=r"^[\w.-]+/[\w.-]+$"
    )
    hub_private: bool = option(True, description="Create the Hub repository as private.")


class RuntimeSection(Section):
    device: Literal["auto", "cpu", "cuda"] = option(
        "auto", description="Where to train: 'auto' uses CUDA when present."
    )
    num_processes: int = option(
        1,
        description="Processes (usually one per GPU). More than one runs under accelerate "
        "launch (DDP, or FSDP/DeepSpeed through accelerate_config).",
        ge=1,
        le=64,
    )
    accelerate_config: str | None = option(
        None, description="accelerate config file for FSDP or DeepSpeed.", widget="file"
    )
    max_runtime_minutes: float | None = option(
        None,
        description="Stop cleanly (with a checkpoint) after this many minutes; empty for no limit.",
        gt=0,
    )
    timeout_warning_minutes: float = option(
        5.0,
        description="Send timeout_warning this many minutes before max_runtime_minutes.",
        ge=0,
    )
    torch_threads: int | None = option(
        None, description="CPU threads for torch; empty for torch's default.", ge=1, le=512
    )


# ------------------------------------------------------------------------------ method sections
