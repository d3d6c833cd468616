"""Building blocks of the schema: the method and format names, the field helper, errors."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

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
    # NaN and Infinity (which Python's JSON reader accepts) are refused: no setting means them,
    # and a saved config would turn them into null.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------- model
