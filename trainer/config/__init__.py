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

from trainer.config.fields import (
    CONFIG_VERSION,
    METHOD_TITLES,
    METHODS,
    ConfigError,
    DatasetFormat,
    Method,
    Section,
    option,
)
from trainer.config.loading import (
    field_metadata,
    format_validation_error,
    json_schema,
    load_config,
    parse_config,
    read_config_file,
    upgrade_config,
)
from trainer.config.method_sections import (
    CPTSection,
    DPOSection,
    GenerationOptions,
    GRPOSection,
    KTOSection,
    ORPOSection,
    RewardName,
    RLHFSection,
    SFTSection,
)
from trainer.config.run_config import (
    FULL_FINETUNE_LR_FACTOR,
    METHOD_DEFAULTS,
    METHOD_SECTION,
    RunConfig,
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

__all__ = [
    "CONFIG_VERSION",
    "FULL_FINETUNE_LR_FACTOR",
    "METHODS",
    "METHOD_DEFAULTS",
    "METHOD_SECTION",
    "METHOD_TITLES",
    "AdapterSection",
    "CPTSection",
    "CheckpointSection",
    "ConfigError",
    "DPOSection",
    "DatasetFormat",
    "DatasetSection",
    "EvaluationSection",
    "GRPOSection",
    "GenerationOptions",
    "KTOSection",
    "LoggingSection",
    "Method",
    "ModelSection",
    "ORPOSection",
    "OutputSection",
    "RLHFSection",
    "RewardName",
    "RunConfig",
    "RunPodSection",
    "RuntimeSection",
    "SFTSection",
    "Section",
    "TrainingSection",
    "field_metadata",
    "format_validation_error",
    "json_schema",
    "load_config",
    "option",
    "parse_config",
    "read_config_file",
    "upgrade_config",
]
