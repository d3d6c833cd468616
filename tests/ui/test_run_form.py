"""The New Run dialog: presets, import/export, where to run, Launch only when valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.ui.presets import BUILTIN_DIR, PresetLibrary
from app.ui.run_form import LOCAL, RUNPOD, RunDialog
from trainer.config import RunConfig


@pytest.fixture
def dialog(qtbot, tmp_path: Path) -> RunDialog:
    widget = RunDialog(PresetLibrary(tmp_path / "presets"))
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_a_builtin_preset_fills_the_form(qtbot, dialog: RunDialog) -> None:
    demo = dialog.presets.find("demo-sft", builtin=True)
    assert demo is not None
    dialog.apply_preset(demo)
    cfg = dialog.form.config()
    expected = json.loads((BUILTIN_DIR / "demo-sft.json").read_text())
    assert cfg.model.name_or_path == expected["model"]["name_or_path"]
    assert cfg.training.max_steps == expected["training"]["max_steps"]
    assert dialog.preset_combo.currentText() == "demo-sft (built-in)"
    assert not dialog.delete_preset_button.isEnabled()  # built-in presets stay


def test_a_saved_preset_comes_back_with_the_users_values(qtbot, dialog: RunDialog) -> None:
    dialog.form.set_method("dpo")
    dialog.form.set_value("dpo.beta", 0.4)
    preset = dialog.save_preset("my dpo")
    assert json.loads(preset.path.read_text()) == {"method": "dpo", "dpo": {"beta": 0.4}}
    assert dialog.delete_preset_button.isEnabled()
    dialog.form.load({"method": "sft"})
    dialog.apply_preset(preset)
    assert dialog.form.method == "dpo" and dialog.form.config().dpo.beta == 0.4


def test_export_then_import_round_trips_the_config(qtbot, dialog: RunDialog, tmp_path) -> None:
    dialog.form.set_method("kto")
    dialog.form.set_value("name", "kto-run")
    dialog.form.set_value("kto.desirable_weight", 1.5)
    path = tmp_path / "run.json"
    dialog.export_file(path)
    written = RunConfig.model_validate_json(path.read_text())
    assert written.method == "kto" and written.kto.desirable_weight == 1.5

    dialog.form.load({"method": "sft"})
    assert dialog.import_file(path)
    assert dialog.form.config() == written


def test_launch_is_disabled_while_a_field_is_wrong(qtbot, dialog: RunDialog) -> None:
    assert dialog.launch_button.isEnabled()
    dialog.form.set_value("training.learning_rate", "2")  # le=1
    assert not dialog.launch_button.isEnabled()
    assert "less than or equal to 1" in dialog.form.error_text("training.learning_rate")
    dialog.form.set_value("training.learning_rate", "0.001")
    assert dialog.launch_button.isEnabled()


def test_launch_hands_over_the_config_and_where_to_run(qtbot, dialog: RunDialog) -> None:
    dialog.form.set_value("name", "go")
    with qtbot.waitSignal(dialog.launch_requested) as signal:
        qtbot.mouseClick(dialog.launch_button, Qt.MouseButton.LeftButton)
    config, target = signal.args
    assert isinstance(config, RunConfig) and config.name == "go"
    assert target == LOCAL
    assert not dialog.isVisible()


def test_runpod_is_offered_but_disabled_with_the_reason(qtbot, dialog: RunDialog) -> None:
    index = dialog.target_combo.findData(RUNPOD)
    item = dialog.target_combo.model().item(index)
    assert not item.isEnabled()
    assert "RunPod API key" in item.toolTip()
    assert "RunPod API key" in dialog.target_note.text()


def test_a_broken_config_file_is_refused_with_its_line(qtbot, dialog, tmp_path, monkeypatch):
    path = tmp_path / "bad.json"
    path.write_text('{"method": "sft",\n "name": }')
    shown: list[str] = []
    monkeypatch.setattr(
        "app.ui.run_form.QMessageBox.warning", lambda parent, title, text: shown.append(text)
    )
    assert not dialog.import_file(path)
    assert "bad.json" in shown[0] and "line 2" in shown[0]
