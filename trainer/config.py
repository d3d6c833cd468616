"""The run configuration: one pydantic schema for a whole fine-tuning run.

This module is the single source of truth for what a run can be told. The trainer validates with
it, the desktop builds its forms from it, presets are instances of it and the JSON that travels to
a pod is it, serialised. It must stay light: pydantic and the standard library only (the GUI
process imports it).

Field metadata lives in ``json_schema_extra``:

- ``basic``: shown before "Advanced" in the form;
- ``methods``: the methods that read the field (absent = every method);
- ``widget``: an optional hint for the form ("path", "file", "multiline").
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_VERSION = 1

Method = Literal["sft", "cpt", "dpo", "orpo", "kto", "grpo", "rlhf"]
METHODS: tuple[str, ...] = get_args(Method)

METHOD_TITLES: dict[str, str] = {
    "sft": "Supervised fine-tuning (SFT)",
    "cpt": "Continued pre-training (CPT)",
    "dpo": "Direct preference optimisation (DPO)",
    "orpo": "Odds-ratio preference optimisation (ORPO)",
    "kto": "Kahneman-Tversky optimisation (KTO)",
    "grpo": "Group relative policy optimisation (GRPO)",
    "rlhf": "RLHF: reward model, then online policy optimisation",
}

DatasetFormat = Literal[
    "auto",
    "messages",
    "sharegpt",
    "alpaca",
    "text",
    "prompt_completion",
    "prompt",
    "preference",
    "kto",
]


class ConfigError(ValueError):
    """A config that cannot run. ``problems`` holds one "field.path: what is allowed" per line."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


def option(
    default: Any = ...,
    *,
    description: str,
    title: str | None = None,
    basic: bool = False,
    methods: tuple[str, ...] | None = None,
    widget: str | None = None,
    **constraints: Any,
) -> Any:
    """A schema field with the metadata the form generator reads."""
    extra: dict[str, Any] = {"basic": basic}
    if methods is not None:
        extra["methods"] = list(methods)
    if widget is not None:
        extra["widget"] = widget
    return Field(
        default,
        title=title,
        description=description,
        json_schema_extra=extra,
        **constraints,
    )


class Section(BaseModel):
    # Unknown keys are errors: a misspelt field silently ignored is a run that does something
    # other than what the user asked, on a GPU that costs money.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------- model


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


class SFTSection(Section):
    completion_only_loss: bool = option(
        True,
        description="Train only on completion/assistant tokens; prompt tokens get label -100.",
        basic=True,
    )
    packing: bool = option(False, description="Pack several rows into each sequence.")


class CPTSection(Section):
    packing: bool = option(
        True, description="Concatenate documents into full-length blocks.", basic=True
    )


class DPOSection(Section):
    beta: float = option(
        0.1, description="Strength of the KL penalty to the reference model.", basic=True, gt=0
    )
    loss_type: Literal[
        "sigmoid", "ipo", "hinge", "robust", "exo_pair", "bco_pair", "apo_zero", "apo_down"
    ] = option("sigmoid", description="DPO loss variant.")
    label_smoothing: float = option(
        0.0, description="Assumed label noise (robust/cDPO).", ge=0, lt=0.5
    )
    max_prompt_length: int | None = option(
        None, description="Truncate prompts to this many tokens; empty for max_length.", ge=1
    )


class ORPOSection(Section):
    beta: float = option(
        0.1, description="Weight of the odds-ratio term (lambda in the paper).", basic=True, gt=0
    )


class KTOSection(Section):
    beta: float = option(0.1, description="Strength of the KL penalty.", basic=True, gt=0)
    desirable_weight: float = option(
        1.0, description="Loss weight of desirable (label true) rows.", gt=0
    )
    undesirable_weight: float = option(1.0, description="Loss weight of undesirable rows.", gt=0)


RewardName = Annotated[str, Field(min_length=1)]


class GenerationOptions(Section):
    num_generations: int = option(
        4, description="Completions sampled per prompt (the group size).", basic=True, ge=2, le=256
    )
    max_completion_length: int = option(
        128, description="Tokens per sampled completion.", basic=True, ge=1, le=131072
    )
    temperature: float = option(1.0, description="Sampling temperature.", gt=0, le=10)
    beta: float = option(
        0.0,
        title="KL beta",
        description="KL penalty to the reference policy (0 disables it).",
        ge=0,
    )


class GRPOSection(GenerationOptions):
    reward_functions: list[RewardName] = option(
        ["format", "length"],
        description="Rewards added up per completion: built-in names (format, length, "
        "no_repeat, match_reference) or 'path/to/file.py:function'.",
        basic=True,
        min_length=1,
    )
    target_length: int = option(
        64, description="Characters the built-in 'length' reward favours.", ge=1
    )


class RLHFSection(GenerationOptions):
    reward_model: str | None = option(
        None,
        description="An existing reward model (Hub id or folder). Empty: train one first on the "
        "preference pairs.",
        basic=True,
        widget="model",
    )
    reward_dataset: str | None = option(
        None,
        description="Preference pairs for the reward model; empty uses the run's dataset.",
        widget="dataset",
    )
    reward_epochs: float = option(1.0, description="Epochs of reward-model training.", gt=0)
    reward_learning_rate: float = option(
        1e-4, description="Reward-model learning rate.", gt=0, le=1
    )
    policy_algorithm: Literal["rloo", "grpo"] = option(
        "rloo",
        description="Online algorithm that optimises the policy against the reward model.",
        basic=True,
    )


# ---------------------------------------------------------------------------------- whole run

# Method-dependent defaults, applied only where the user's config leaves the field out, so an
# explicit value (zero included) always wins.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {},
    "cpt": {"training.learning_rate": 1e-4},
    "dpo": {"training.learning_rate": 5e-5},
    "orpo": {"training.learning_rate": 8e-5},
    "kto": {"training.learning_rate": 5e-5, "training.per_device_train_batch_size": 4},
    "grpo": {"training.learning_rate": 1e-5, "training.per_device_train_batch_size": 4},
    "rlhf": {"training.learning_rate": 1e-5, "training.per_device_train_batch_size": 4},
}
# Full fine-tuning moves every weight: a LoRA-sized learning rate would wreck the model.
FULL_FINETUNE_LR_FACTOR = 0.1

METHOD_SECTION = {m: m for m in METHODS}


class RunConfig(Section):
    """A whole run. Serialised, this is the JSON the trainer is started with."""

    version: int = option(CONFIG_VERSION, description="Config schema version.", ge=1)
    name: str = option(
        "run",
        title="Run name",
        description="Short name shown in the job list and used in the output folder.",
        basic=True,
        min_length=1,
        max_length=120,
        pattern=r"^[\w][\w .-]*$",
    )
    method: Method = option("sft", description="Training method.", basic=True)
    model: ModelSection = option(
        default_factory=ModelSection, description="The model to fine-tune."
    )
    dataset: DatasetSection = option(default_factory=DatasetSection, description="Training data.")
    training: TrainingSection = option(
        default_factory=TrainingSection, description="Hyperparameters."
    )
    adapter: AdapterSection = option(
        default_factory=AdapterSection, description="LoRA, QLoRA or full fine-tuning."
    )
    evaluation: EvaluationSection = option(
        default_factory=EvaluationSection, description="Evaluation."
    )
    checkpoint: CheckpointSection = option(
        default_factory=CheckpointSection, description="Checkpoints and resuming."
    )
    logging: LoggingSection = option(
        default_factory=LoggingSection, description="Metric reporting."
    )
    output: OutputSection = option(default_factory=OutputSection, description="Where results go.")
    runtime: RuntimeSection = option(
        default_factory=RuntimeSection, description="Devices and limits."
    )
    sft: SFTSection = option(
        default_factory=SFTSection, description="SFT options.", methods=("sft",)
    )
    cpt: CPTSection = option(
        default_factory=CPTSection, description="Continued pre-training options.", methods=("cpt",)
    )
    dpo: DPOSection = option(
        default_factory=DPOSection, description="DPO options.", methods=("dpo",)
    )
    orpo: ORPOSection = option(
        default_factory=ORPOSection, description="ORPO options.", methods=("orpo",)
    )
    kto: KTOSection = option(
        default_factory=KTOSection, description="KTO options.", methods=("kto",)
    )
    grpo: GRPOSection = option(
        default_factory=GRPOSection, description="GRPO options.", methods=("grpo",)
    )
    rlhf: RLHFSection = option(
        default_factory=RLHFSection, description="RLHF options.", methods=("rlhf",)
    )

    # -- method-dependent defaults ------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _apply_method_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        method = data.get("method", "sft")
        if method not in METHOD_DEFAULTS:
            return data  # the Literal check reports it
        data = copy.deepcopy(data)  # never mutate the caller's dict
        defaults = dict(METHOD_DEFAULTS[method])
        adapter = data.get("adapter") if isinstance(data.get("adapter"), dict) else {}
        if adapter.get("kind") == "full":
            lr = defaults.get("training.learning_rate", TrainingSection().learning_rate)
            defaults["training.learning_rate"] = lr * FULL_FINETUNE_LR_FACTOR
        for dotted, value in defaults.items():
            section, key = dotted.split(".")
            sect = data.setdefault(section, {})
            if isinstance(sect, dict) and key not in sect:
                sect[key] = value
        return data

    # -- cross-field rules, one small named validator per topic --------------------------------

    @model_validator(mode="after")
    def _kto_needs_batches(self) -> RunConfig:
        if self.method == "kto" and self.training.per_device_train_batch_size < 2:
            raise ValueError(
                "training.per_device_train_batch_size: KTO needs at least 2 rows per batch "
                "to estimate its KL term"
            )
        return self

    @model_validator(mode="after")
    def _generation_batch_divides(self) -> RunConfig:
        if self.method in ("grpo", "rlhf"):
            gen = self.grpo if self.method == "grpo" else self.rlhf
            batch = (
                self.training.per_device_train_batch_size
                * self.training.gradient_accumulation_steps
            )
            if batch % gen.num_generations:
                raise ValueError(
                    f"training.per_device_train_batch_size: batch size x gradient accumulation "
                    f"({batch}) must be a multiple of {self.method}.num_generations "
                    f"({gen.num_generations})"
                )
        return self

    @model_validator(mode="after")
    def _hub_push_needs_repo(self) -> RunConfig:
        if self.output.push_to_hub and not self.output.hub_repo:
            raise ValueError("output.hub_repo: required when output.push_to_hub is on (owner/name)")
        return self

    @model_validator(mode="after")
    def _qlora_needs_cuda(self) -> RunConfig:
        if self.adapter.kind == "qlora" and self.runtime.device == "cpu":
            raise ValueError(
                "adapter.kind: QLoRA needs a CUDA GPU; choose 'lora' or 'full' to train on a CPU"
            )
        if (
            self.training.optimizer in ("adamw_8bit", "paged_adamw_8bit")
            and self.runtime.device == "cpu"
        ):
            raise ValueError("training.optimizer: 8-bit optimisers need a CUDA GPU")
        return self

    @model_validator(mode="after")
    def _timeout_warning_before_limit(self) -> RunConfig:
        limit = self.runtime.max_runtime_minutes
        if limit is not None and self.runtime.timeout_warning_minutes >= limit:
            raise ValueError(
                "runtime.timeout_warning_minutes: must be less than runtime.max_runtime_minutes "
                f"({limit:g})"
            )
        return self

    @model_validator(mode="after")
    def _accelerate_config_needs_processes(self) -> RunConfig:
        if self.runtime.accelerate_config and self.runtime.num_processes < 2:
            raise ValueError(
                "runtime.accelerate_config: only used with runtime.num_processes of 2 or more"
            )
        return self

    # -- derived values ------------------------------------------------------------------------

    def method_options(self) -> BaseModel:
        """The section of the chosen method."""
        return getattr(self, METHOD_SECTION[self.method])

    def resolved_output_dir(self, base: Path | None = None) -> Path:
        out = Path(self.output.output_dir.replace("{name}", self.name.replace(" ", "_")))
        if not out.is_absolute() and base is not None:
            out = base / out
        return out

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


# ------------------------------------------------------------------------------- entry points


def _format_location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-after")]
    return ".".join(parts) if parts else "(config)"


def format_validation_error(err: ValidationError) -> list[str]:
    """One line per problem: the field path, what is wrong, what was given."""
    lines = []
    for e in err.errors():
        loc = _format_location(tuple(e["loc"]))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
            # cross-field rules name their own field first
            if ":" in msg.split(" ", 1)[0]:
                lines.append(msg)
                continue
        if e["type"] == "extra_forbidden":
            lines.append(
                f"{loc}: unknown field (check the spelling; see `python -m trainer schema`)"
            )
            continue
        given = e.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
        lines.append(f"{loc}: {msg}{shown}")
    return lines


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older config up to CONFIG_VERSION. Version 1 is the first; nothing to do yet."""
    version = data.get("version", CONFIG_VERSION)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ConfigError(
            [
                f"version: this Tunedeck reads config versions up to {CONFIG_VERSION} "
                f"(got {version!r})"
            ]
        )
    return data


def parse_config(data: dict[str, Any], source: str | None = None) -> RunConfig:
    """Validate a config dict, raising ConfigError with readable problems."""
    if not isinstance(data, dict):
        raise ConfigError(["(config): must be a JSON object"], source)
    data = upgrade_config(data)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err), source) from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"cannot read the config file: {err.strerror}"], str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            [f"line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"], str(path)
        ) from None
    return parse_config(data, str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of RunConfig (what `python -m trainer schema` prints)."""
    return RunConfig.model_json_schema()


def field_metadata(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The form metadata (basic, methods, widget) of one field."""
    extra = model.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}
