"""The run form generated from RunConfig: every field rendered, method sections, inline errors."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from app.ui.schema_fields import all_fields, problem_path, walk_schema
from app.ui.schema_form import SchemaForm
from trainer.config import RunConfig, field_metadata


@pytest.fixture
def form(qtbot) -> SchemaForm:
    widget = SchemaForm()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _type(qtbot, form: SchemaForm, path: str, text: str) -> None:
    line = form.editor(path).focus_widget()
    assert isinstance(line, QLineEdit)
    line.selectAll()
    qtbot.keyClick(line, Qt.Key.Key_Backspace)
    qtbot.keyClicks(line, text)


def test_every_schema_field_gets_an_editor_with_its_label_and_help(form: SchemaForm) -> None:
    specs = all_fields(walk_schema())
    # every leaf of every section except the hidden ones
    expected = {
        f"{name}.{leaf}"
        for name, info in RunConfig.model_fields.items()
        if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields")
        for leaf in info.annotation.model_fields
    } | {"name"}
    assert set(form.rows) == expected == set(specs)
    lr = form.editor("training.learning_rate")
    assert lr.toolTip().startswith("Peak learning rate")
    assert isinstance(form.editor("training.lr_scheduler_type").focus_widget(), QComboBox)
    assert isinstance(form.editor("adapter.merge_after_training").focus_widget(), QCheckBox)
    spin = form.editor("adapter.r").focus_widget()
    assert isinstance(spin, QSpinBox)
    assert (spin.minimum(), spin.maximum()) == (1, 1024)  # ge=1, le=1024 in the schema


def test_dpo_form_shows_dpo_options_and_dpo_defaults_and_builds_the_config(
    qtbot, form: SchemaForm
) -> None:
    assert form.section_shown("sft") and not form.section_shown("dpo")
    form.set_method("dpo")
    assert form.section_shown("dpo") and not form.section_shown("sft")
    assert form.field_shown("dpo.beta")  # basic: shown without opening Advanced
    assert not form.rows["sft.completion_only_loss"].isVisibleTo(form)
    # the schema's DPO learning rate, not SFT's, until the user types one
    assert form.editor("training.learning_rate").value() == "5e-05"

    _type(qtbot, form, "name", "pref-run")
    _type(qtbot, form, "dpo.beta", "0.25")
    _type(qtbot, form, "dataset.path", "data/pairs.jsonl")
    form.editor("training.per_device_train_batch_size").focus_widget().setValue(4)

    cfg = form.config()
    assert cfg.method == "dpo"
    assert cfg.name == "pref-run"
    assert cfg.dpo.beta == 0.25
    assert cfg.dataset.path == "data/pairs.jsonl"
    assert cfg.training.per_device_train_batch_size == 4
    assert cfg.training.learning_rate == 5e-5
    assert form.is_valid()


def test_a_bad_learning_rate_gets_the_schemas_message_next_to_the_field(
    qtbot, form: SchemaForm
) -> None:
    validity: list[bool] = []
    form.validity_changed.connect(validity.append)
    _type(qtbot, form, "training.learning_rate", "-0.1")
    message = "Input should be greater than 0 (got '-0.1')"
    assert form.error_text("training.learning_rate") == message
    assert form.rows["training.learning_rate"].error.isVisibleTo(form)
    assert form.editor("training.learning_rate").focus_widget().property("invalid") is True
    assert not form.is_valid() and validity == [False]

    _type(qtbot, form, "training.learning_rate", "abc")
    assert "valid number" in form.error_text("training.learning_rate")

    _type(qtbot, form, "training.learning_rate", "3e-4")
    assert form.error_text("training.learning_rate") == ""
    assert form.is_valid() and validity == [False, True]
    assert form.config().training.learning_rate == 3e-4


def test_basic_fields_first_and_the_rest_under_advanced(qtbot, form: SchemaForm) -> None:
    for path, spec in form.specs.items():
        section = path.split(".")[0] if "." in path else ""
        meta_basic = spec.basic
        if section and section in RunConfig.model_fields:
            sub = RunConfig.model_fields[section].annotation
            meta_basic = bool(field_metadata(sub, spec.name).get("basic"))
        assert spec.basic == meta_basic
    assert form.rows["training.learning_rate"].isVisibleTo(form)
    assert not form.rows["training.weight_decay"].isVisibleTo(form)
    assert not form.field_shown("training.weight_decay")
    qtbot.mouseClick(form.advanced_toggle, Qt.MouseButton.LeftButton)
    assert form.rows["training.weight_decay"].isVisibleTo(form)
    assert form.field_shown("training.weight_decay")


def test_a_cross_field_rule_lands_on_its_field(qtbot, form: SchemaForm) -> None:
    form.set_method("kto")
    form.editor("training.per_device_train_batch_size").focus_widget().setValue(1)
    assert "KTO needs at least 2 rows" in form.error_text("training.per_device_train_batch_size")
    assert not form.is_valid()


def test_a_problem_in_a_collapsed_section_is_listed_at_the_top(qtbot, form: SchemaForm) -> None:
    form.set_value("runtime.max_runtime_minutes", 3.0)  # under the 5-minute warning default
    assert not form.field_shown("runtime.timeout_warning_minutes")
    assert form.banner.isVisibleTo(form)
    assert "runtime.timeout_warning_minutes" in form.banner.text()
    assert "under Advanced" in form.banner.text()


def test_optional_numbers_can_be_left_empty(qtbot, form: SchemaForm) -> None:
    spin = form.editor("training.max_steps").focus_widget()
    assert spin.text() == "none"
    assert form.config().training.max_steps is None
    spin.setValue(12)
    assert form.config().training.max_steps == 12
    spin.setValue(spin.minimum())
    assert form.config().training.max_steps is None


def test_full_fine_tuning_shows_the_lower_learning_rate(qtbot, form: SchemaForm) -> None:
    combo = form.editor("adapter.kind").focus_widget()
    combo.setCurrentIndex(combo.findData("full"))
    assert form.config().training.learning_rate == pytest.approx(2e-5)
    assert form.editor("training.learning_rate").value() == repr(2e-4 * 0.1)


def test_loading_a_config_shows_its_values_and_keeps_them_as_set(qtbot, form: SchemaForm) -> None:
    form.load({"method": "orpo", "name": "loaded", "orpo": {"beta": 0.3}, "training": {}})
    assert form.method == "orpo"
    assert form.method_combo.currentData() == "orpo"
    assert form.editor("orpo.beta").value() == "0.3"
    assert form.explicit_dict() == {"method": "orpo", "name": "loaded", "orpo": {"beta": 0.3}}
    # a value typed as text is stored as the schema's type in a preset
    _type(qtbot, form, "training.learning_rate", "1e-5")
    assert form.explicit_dict()["training"] == {"learning_rate": 1e-5}


def test_problem_lines_map_to_the_longest_known_field() -> None:
    known = {"grpo.reward_functions", "training.learning_rate"}
    assert problem_path("grpo.reward_functions.0: too short", known) == "grpo.reward_functions"
    assert problem_path("(config): must be an object", known) is None
