"""Self-test of the run config schema: every field documented, every default valid, zeros kept,
method defaults applied, and each cross-field rule tested on its own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from trainer.config import (
    FULL_FINETUNE_LR_FACTOR,
    METHOD_DEFAULTS,
    METHODS,
    ConfigError,
    RunConfig,
    RunPodSection,
    TrainingSection,
    json_schema,
    load_config,
    parse_config,
)

TRAINER_DIR = Path(__file__).resolve().parents[2] / "trainer"


def walk_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, type]]:
    """(dotted path, FieldInfo, owning model) for every leaf field of the schema."""
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from walk_fields(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info, model


ALL_FIELDS = list(walk_fields(RunConfig))
FIELD_IDS = [path for path, _, _ in ALL_FIELDS]


def test_the_schema_has_fields() -> None:
    assert len(ALL_FIELDS) > 60


@pytest.mark.parametrize(("path", "info", "owner"), ALL_FIELDS, ids=FIELD_IDS)
def test_every_field_has_a_description(path: str, info: Any, owner: type) -> None:
    assert info.description and len(info.description) > 10, path


@pytest.mark.parametrize(("path", "info", "owner"), ALL_FIELDS, ids=FIELD_IDS)
def test_every_default_validates(path: str, info: Any, owner: type) -> None:
    default = info.get_default(call_default_factory=True)
    name = path.rsplit(".", 1)[-1]
    section = owner.model_validate({name: default})
    assert getattr(section, name) == default


def test_the_whole_default_config_validates_and_round_trips() -> None:
    cfg = RunConfig()
    again = parse_config(json.loads(cfg.to_json()))
    assert again == cfg


def _zero_allowed(info: Any) -> bool:
    if info.annotation not in (int, float, int | None, float | None):
        return False
    for meta in info.metadata:
        for attr in ("gt", "ge"):
            bound = getattr(meta, attr, None)
            if bound is not None and (bound > 0 or (attr == "gt" and bound >= 0)):
                return False
    return True


ZERO_FIELDS = [(p, i, o) for p, i, o in ALL_FIELDS if _zero_allowed(i)]


def test_zero_fields_found() -> None:
    found = {p for p, _, _ in ZERO_FIELDS}
    assert {"training.warmup_steps", "training.weight_decay", "grpo.beta"} <= found


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("path", "info", "owner"), ZERO_FIELDS, ids=[p for p, _, _ in ZERO_FIELDS])
def test_explicit_zeros_are_kept(method: str, path: str, info: Any, owner: type) -> None:
    section, name = path.split(".")
    cfg = parse_config({"method": method, section: {name: 0}})
    assert getattr(getattr(cfg, section), name) == 0


@pytest.mark.parametrize("method", METHODS)
def test_method_defaults_apply_where_the_config_is_silent(method: str) -> None:
    cfg = parse_config({"method": method})
    for dotted, value in METHOD_DEFAULTS[method].items():
        section, name = dotted.split(".")
        assert getattr(getattr(cfg, section), name) == value, dotted
    if "training.learning_rate" not in METHOD_DEFAULTS[method]:
        assert cfg.training.learning_rate == TrainingSection().learning_rate


@pytest.mark.parametrize("method", METHODS)
def test_full_fine_tuning_scales_the_default_learning_rate(method: str) -> None:
    lora = parse_config({"method": method}).training.learning_rate
    full = parse_config({"method": method, "adapter": {"kind": "full"}}).training.learning_rate
    assert full == pytest.approx(lora * FULL_FINETUNE_LR_FACTOR)


def test_an_explicit_value_beats_the_method_default() -> None:
    cfg = parse_config(
        {"method": "dpo", "adapter": {"kind": "full"}, "training": {"learning_rate": 0.3}}
    )
    assert cfg.training.learning_rate == 0.3


def test_method_defaults_never_mutate_the_callers_dict() -> None:
    data: dict[str, Any] = {"method": "kto"}
    parse_config(data)
    assert data == {"method": "kto"}


# ----------------------------------------------------------------- cross-field rules

CROSS_FIELD_CASES: dict[str, list[tuple[dict[str, Any], str | None]]] = {
    "_kto_needs_batches": [
        ({"method": "kto", "training": {"per_device_train_batch_size": 1}}, "KTO needs"),
        ({"method": "kto", "training": {"per_device_train_batch_size": 2}}, None),
        ({"method": "sft", "training": {"per_device_train_batch_size": 1}}, None),
    ],
    "_generation_batch_divides": [
        (
            {"method": "grpo", "training": {"per_device_train_batch_size": 3}},
            "must be a multiple of grpo.num_generations",
        ),
        (
            {
                "method": "rlhf",
                "training": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2},
            },
            None,
        ),
        (
            {"method": "rlhf", "rlhf": {"num_generations": 8}},
            "must be a multiple of rlhf.num_generations",
        ),
    ],
    "_hub_push_needs_repo": [
        ({"output": {"push_to_hub": True}}, "output.hub_repo: required"),
        ({"output": {"push_to_hub": True, "hub_repo": "me/model"}}, None),
    ],
    "_qlora_needs_cuda": [
        ({"adapter": {"kind": "qlora"}, "runtime": {"device": "cpu"}}, "QLoRA needs a CUDA GPU"),
        (
            {"training": {"optimizer": "adamw_8bit"}, "runtime": {"device": "cpu"}},
            "8-bit optimisers need a CUDA GPU",
        ),
        ({"adapter": {"kind": "qlora"}, "runtime": {"device": "auto"}}, None),
    ],
    "_timeout_warning_before_limit": [
        (
            {"runtime": {"max_runtime_minutes": 5, "timeout_warning_minutes": 5}},
            "must be less than runtime.max_runtime_minutes",
        ),
        ({"runtime": {"max_runtime_minutes": 10, "timeout_warning_minutes": 5}}, None),
    ],
    "_accelerate_config_needs_processes": [
        ({"runtime": {"accelerate_config": "fsdp.yaml"}}, "only used with runtime.num_processes"),
        ({"runtime": {"accelerate_config": "fsdp.yaml", "num_processes": 2}}, None),
    ],
}


def test_every_cross_field_rule_has_its_own_cases() -> None:
    validators = set(RunConfig.__pydantic_decorators__.model_validators)
    rules = {name for name in validators if name != "_apply_method_defaults"}
    assert rules == set(CROSS_FIELD_CASES)


@pytest.mark.parametrize(
    ("rule", "data", "message"),
    [(rule, d, m) for rule, cases in CROSS_FIELD_CASES.items() for d, m in cases],
    ids=[f"{rule}-{i}" for rule, cases in CROSS_FIELD_CASES.items() for i in range(len(cases))],
)
def test_cross_field_rule(rule: str, data: dict[str, Any], message: str | None) -> None:
    if message is None:
        parse_config(data)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    # the problem line names the field first, so the form can point at it
    (line,) = err.value.problems
    assert message in line
    assert re.match(r"^[a-z_]+\.[a-z_]+: ", line), line


# --------------------------------------------------------------------- entry points


def test_unknown_and_misspelt_fields_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"training": {"learning_rat": 1e-4}})
    assert err.value.problems == [
        "training.learning_rat: unknown field; did you mean 'learning_rate'?"
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"training": {"learnign_rate": 1e-4}},
            "training.learnign_rate: unknown field; did you mean 'learning_rate'?",
        ),
        ({"trainig": {}}, "trainig: unknown field; did you mean 'training'?"),
        ({"methd": "sft"}, "methd: unknown field; did you mean 'method'?"),
        ({"dataset": {"pth": "d.jsonl"}}, "dataset.pth: unknown field; did you mean 'path'?"),
        # the suggestion comes from the section the field is in, not from the whole schema
        ({"adapter": {"learning_rat": 1}}, "adapter.learning_rat: unknown field (check the "),
        ({"training": {"zzyzx": 1}}, "training.zzyzx: unknown field (check the spelling; see "),
        ({"colour": "red"}, "colour: unknown field (check the spelling; see "),
    ],
)
def test_an_unknown_field_names_the_closest_known_one(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    [line] = err.value.problems
    assert line.startswith(problem), line
    assert ("did you mean" in line) == ("did you mean" in problem)


def test_load_config_reports_bad_json_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "method": "sft",\n  oops\n}')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "line 3" in err.value.problems[0]
    assert err.value.source == str(path)


def test_json_schema_describes_every_section_field() -> None:
    schema = json_schema()
    for name, definition in schema["$defs"].items():
        for prop, body in definition.get("properties", {}).items():
            assert body.get("description"), f"{name}.{prop}"


# Fields read outside trainer/ only, or only by config.py itself, with the reason.
NOT_READ_BY_TRAINER_CODE = {
    "version": "read by upgrade_config in config.py",
    **{
        f"runpod.{name}": "read by the app's RunPod launcher (app/core/runpod), not the trainer"
        for name in RunPodSection.model_fields
    },
}


@pytest.mark.parametrize(("path", "info", "owner"), ALL_FIELDS, ids=FIELD_IDS)
def test_the_trainer_reads_every_field(path: str, info: Any, owner: type) -> None:
    """A field nothing reads is a knob that does nothing: fail until something uses it."""
    if path in NOT_READ_BY_TRAINER_CODE:
        return
    name = path.rsplit(".", 1)[-1]
    sources = [
        p.read_text(encoding="utf-8") for p in TRAINER_DIR.rglob("*.py") if p.name != "config.py"
    ]
    pattern = re.compile(rf"\.{re.escape(name)}\b")
    assert any(pattern.search(s) for s in sources), f"{path}: nothing in trainer/ reads it"
