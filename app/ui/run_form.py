"""The New Run dialog: presets, import/export, the schema form, where to run, Launch.

The form itself is generated (schema_form.py); this dialog adds what is not a config field:
presets (built-in and the user's own), reading and writing config files, the choice of where the
run goes, and the Launch button, which stays disabled while the config has a problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.runpod.models import GpuType
from app.ui.field_editors import EditorFactory
from app.ui.gpu_picker import GpuPicker
from app.ui.plan_view import PlanView
from app.ui.presets import Preset, PresetLibrary, read_config_file
from app.ui.schema_form import SchemaForm
from trainer.config import ConfigError, RunConfig

LOCAL = "local"
RUNPOD = "runpod"
TARGET_TITLES = {LOCAL: "This computer", RUNPOD: "RunPod (cloud GPU)"}
RUNPOD_OFF_REASON = "Add a RunPod API key in Settings to run on a cloud GPU."


class RunDialog(QDialog):
    """Fill in a run and launch it. ``launch_requested(config, target)`` on Launch."""

    launch_requested = Signal(object, str)

    def __init__(
        self,
        presets: PresetLibrary,
        targets: Mapping[str, str | None] | None = None,
        overrides: Mapping[str, EditorFactory] | None = None,
        parent: QWidget | None = None,
        gpus: Sequence[GpuType] | None = None,
        gpu_source: str = "",
    ) -> None:
        """``targets`` maps where a run can go to None (available) or why it is not;
        ``gpus`` are RunPod's GPU types (None: the table shipped with the app)."""
        super().__init__(parent)
        self.setWindowTitle("New run")
        self.setObjectName("runDialog")
        self.presets = presets
        self.targets = dict(targets or {LOCAL: None, RUNPOD: RUNPOD_OFF_REASON})
        self.form = SchemaForm(overrides=overrides)
        # an editor that depends on the method (the dataset picker checks rows against it)
        for row in self.form.rows.values():
            follow = getattr(row.editor, "set_method", None)
            if callable(follow):
                follow(self.form.method)
                self.form.method_changed.connect(follow)
        self._build()
        self._fill_presets()
        self.form.validity_changed.connect(self._update_launch)
        self._update_launch(self.form.is_valid())
        self._set_gpus(gpus, gpu_source)
        self.gpu_picker.gpu_chosen.connect(lambda gpu: self.form.set_value("runpod.gpu_type", gpu))
        self.form.config_changed.connect(self._refresh_gpu_picker)
        self.target_combo.currentIndexChanged.connect(self._target_changed)
        self._target_changed()
        # the estimate follows every edit and the choice of where the run goes
        self.form.config_changed.connect(self._refresh_plan)
        self.target_combo.currentIndexChanged.connect(self._refresh_plan)
        self.finished.connect(self.plan_view.shutdown)
        self._refresh_plan()
        self.resize(760, 820)

    # -- building -------------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Preset", self))
        self.preset_combo = QComboBox(self)
        self.preset_combo.setObjectName("presetPicker")
        self.preset_combo.setMinimumWidth(200)
        self.preset_combo.activated.connect(self._preset_chosen)
        bar.addWidget(self.preset_combo, 1)
        self.save_preset_button = QPushButton("Save as preset…", self)
        self.delete_preset_button = QPushButton("Delete preset", self)
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip("Load a config file (JSON)")
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Save this config as a file (for `tunedeck run`)")
        for button in (
            self.save_preset_button,
            self.delete_preset_button,
            self.import_button,
            self.export_button,
        ):
            bar.addWidget(button)
        layout.addLayout(bar)

        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        layout.addWidget(scroll, 1)

        where = QHBoxLayout()
        where.addWidget(QLabel("Run on", self))
        self.target_combo = QComboBox(self)
        self.target_combo.setObjectName("targetPicker")
        model = self.target_combo.model()
        for target, reason in self.targets.items():
            self.target_combo.addItem(TARGET_TITLES.get(target, target), target)
            index = self.target_combo.count() - 1
            if reason:
                # shown, greyed out, with the reason: the user learns the option exists
                item = model.item(index)  # type: ignore[attr-defined]
                item.setEnabled(False)
                item.setToolTip(reason)
        where.addWidget(self.target_combo)
        self.target_note = QLabel(
            " ".join(r for r in self.targets.values() if r),
            self,
        )
        self.target_note.setObjectName("targetNote")
        self.target_note.setWordWrap(True)
        where.addWidget(self.target_note, 1)
        layout.addLayout(where)
        self.gpu_picker = GpuPicker(self)
        layout.addWidget(self.gpu_picker)
        self.plan_view = PlanView(self)
        layout.addWidget(self.plan_view)

        self.buttons = QDialogButtonBox(self)
        self.launch_button = self.buttons.addButton(
            "Launch", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.launch_button.setObjectName("launchButton")
        self.launch_button.setDefault(True)
        self.launch_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.launch)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.save_preset_button.clicked.connect(self._ask_save_preset)
        self.delete_preset_button.clicked.connect(self._delete_preset)
        self.import_button.clicked.connect(self._ask_import)
        self.export_button.clicked.connect(self._ask_export)

    def _fill_presets(self, select: Preset | None = None) -> None:
        self.preset_combo.clear()
        self.preset_combo.addItem("(none)", None)
        for preset in self.presets.presets():
            self.preset_combo.addItem(preset.label, preset)
            if select is not None and preset.path == select.path:
                self.preset_combo.setCurrentIndex(self.preset_combo.count() - 1)
        self._update_preset_buttons()

    def _update_preset_buttons(self) -> None:
        preset = self.preset_combo.currentData()
        self.delete_preset_button.setEnabled(isinstance(preset, Preset) and not preset.builtin)

    def _update_launch(self, valid: bool) -> None:
        self.launch_button.setEnabled(valid)
        self.launch_button.setToolTip("" if valid else "Fix the fields marked in red first")
        self.export_button.setEnabled(valid)

    def _set_gpus(self, gpus: Sequence[GpuType] | None, source: str) -> None:
        if gpus is None:
            from app.core.runpod.catalog import load_gpu_table

            table = load_gpu_table()
            gpus = table.gpus
            source = source or (
                f"Prices from Tunedeck's table of {table.generated}; availability is known "
                "once a RunPod key is stored."
            )
        self.gpu_picker.set_gpus(gpus, source or "Prices and stock from RunPod now.")
        self.plan_view.set_gpus(gpus)
        self._refresh_gpu_picker()

    def _target_changed(self, *_: object) -> None:
        cloud = self.target == RUNPOD
        self.form.set_section_hidden(RUNPOD, not cloud)
        self.gpu_picker.setVisible(cloud)
        self._refresh_gpu_picker()

    def _refresh_gpu_picker(self) -> None:
        if self.target != RUNPOD:
            return
        try:
            cfg = self.form.config()
        except ConfigError:
            return  # the form marks the problem; the estimate waits for a valid config
        rp = cfg.runpod
        self.gpu_picker.update_from(
            rp.gpu_type,
            rp.cloud,
            rp.gpu_count,
            cfg.runtime.max_runtime_minutes,
            rp.budget_usd,
            rp.grace_minutes,
        )

    def _refresh_plan(self, *_: object) -> None:
        try:
            cfg = self.form.config()
        except ConfigError:
            self.plan_view.invalid()
            return
        self.plan_view.request(cfg, cfg.runpod.gpu_type if self.target == RUNPOD else None)

    def set_target(self, target: str) -> None:
        index = self.target_combo.findData(target)
        if index >= 0:
            self.target_combo.setCurrentIndex(index)

    # -- public face ----------------------------------------------------------------------------

    @property
    def target(self) -> str:
        return str(self.target_combo.currentData())

    def load_config(self, data: Mapping[str, Any]) -> None:
        """Start from an existing config (duplicate a job, open a file, a preset)."""
        self.form.load(data)

    def apply_preset(self, preset: Preset) -> None:
        try:
            data = self.presets.load(preset)
        except ConfigError as err:
            self._problem("Cannot load the preset", err)
            return
        self.form.load(data)
        index = next(
            (
                i
                for i in range(self.preset_combo.count())
                if isinstance(self.preset_combo.itemData(i), Preset)
                and self.preset_combo.itemData(i).path == preset.path
            ),
            0,
        )
        self.preset_combo.setCurrentIndex(index)
        self._update_preset_buttons()

    def save_preset(self, name: str) -> Preset:
        preset = self.presets.save(name, self.form.explicit_dict())
        self._fill_presets(select=preset)
        return preset

    def import_file(self, path: Path) -> bool:
        try:
            data = read_config_file(path)
        except ConfigError as err:
            self._problem("Cannot open the config", err)
            return False
        self.form.load(data)
        return True

    def export_file(self, path: Path) -> None:
        """Write the validated config, as the trainer will read it."""
        config = self.form.config()
        path.write_text(config.to_json() + "\n", encoding="utf-8")

    def launch(self) -> None:
        try:
            config = self.form.config()
        except ConfigError as err:
            self._problem("The run cannot start yet", err)
            return
        if not self.plan_view.confirm_launch(self):
            return  # the estimate exceeds the GPU and the user chose not to launch
        self.launch_requested.emit(config, self.target)
        self.accept()

    def result_config(self) -> RunConfig:
        return self.form.config()

    # -- dialogs --------------------------------------------------------------------------------

    def _preset_chosen(self, index: int) -> None:
        preset = self.preset_combo.itemData(index)
        self._update_preset_buttons()
        if isinstance(preset, Preset):
            self.apply_preset(preset)

    def _ask_save_preset(self) -> None:
        current = self.preset_combo.currentData()
        suggestion = current.name if isinstance(current, Preset) and not current.builtin else ""
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:", text=suggestion)
        if ok and name.strip():
            try:
                self.save_preset(name.strip())
            except (ConfigError, OSError) as err:
                self._problem("Cannot save the preset", err)

    def _delete_preset(self) -> None:
        preset = self.preset_combo.currentData()
        if not isinstance(preset, Preset) or preset.builtin:
            return
        answer = QMessageBox.question(self, "Delete preset", f"Delete the preset “{preset.name}”?")
        if answer == QMessageBox.StandardButton.Yes:
            self.presets.delete(preset)
            self._fill_presets()

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open config", "", "Config (*.json)")
        if path:
            self.import_file(Path(path))

    def _ask_export(self) -> None:
        name = f"{self.form.config_dict().get('name', 'run')}.json"
        path, _ = QFileDialog.getSaveFileName(self, "Export config", name, "Config (*.json)")
        if path:
            try:
                self.export_file(Path(path))
            except (ConfigError, OSError) as err:
                self._problem("Cannot export the config", err)

    def _problem(self, title: str, err: Exception) -> None:
        lines = getattr(err, "problems", None) or [str(err)]
        source = getattr(err, "source", None)
        text = "\n".join(lines)
        QMessageBox.warning(self, title, f"{source}:\n{text}" if source else text)
