"""RunConfig: a whole run, with method-dependent defaults and the cross-field rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, model_validator

from trainer.config.fields import CONFIG_VERSION, METHODS, Method, Section, option
from trainer.config.method_sections import (
    CPTSection,
    DPOSection,
    GRPOSection,
    KTOSection,
    ORPOSection,
    RLHFSection,
    SFTSection,
)
from trainer.config.runpod_section import RunPodSection
from trainer.config.sections import (
    AdapterSection,
    CheckpointSection,
    DatasetSection,
    EvaluationSection,
    LoggingSection,
    ModelSection,
    OutputSection,
    RuntimeSection,
    TrainingSection,
)

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
    runpod: RunPodSection = option(
        default_factory=RunPodSection,
        title="RunPod",
        description="Cloud GPU on RunPod (used only when the run goes to RunPod).",
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
        if not isinstance(method, str) or method not in METHOD_DEFAULTS:
            return data  # the Literal check reports it (a list or an object is unhashable)
        # never mutate the caller's dict: copy the top level and each section given a default
        # (a deep copy would recurse into whatever a user nested, to any depth)
        data = dict(data)
        defaults = dict(METHOD_DEFAULTS[method])
        adapter = data.get("adapter") if isinstance(data.get("adapter"), dict) else {}
        if adapter.get("kind") == "full":
            lr = defaults.get("training.learning_rate", TrainingSection().learning_rate)
            defaults["training.learning_rate"] = lr * FULL_FINETUNE_LR_FACTOR
        for dotted, value in defaults.items():
            section, key = dotted.split(".")
            sect = data.get(section, {})
            if isinstance(sect, dict) and key not in sect:
                data[section] = {**sect, key: value}
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
        section: BaseModel = getattr(self, METHOD_SECTION[self.method])
        return section

    def resolved_output_dir(self, base: Path | None = None) -> Path:
        out = Path(self.output.output_dir.replace("{name}", self.name.replace(" ", "_")))
        if not out.is_absolute() and base is not None:
            out = base / out
        return out

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


# ------------------------------------------------------------------------------- entry points
