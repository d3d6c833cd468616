"""The run form, generated from ``trainer.config.RunConfig``.

Layout: the method picker, then the basic fields of every section the method uses, then the rest
under a collapsed "Advanced". Sections that belong to other methods are hidden.

State: the form keeps the values the user set (typed, loaded from a preset or a file) apart from
the ones they left alone. Only the set ones go into the config dict, so the schema's
method-dependent defaults still apply (DPO's learning rate is not SFT's), and the untouched
editors always show the value the run will get. Every edit re-validates the whole config with
``trainer.config.parse_config``; each problem line is mapped back to its field and shown under it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.field_editors import EditorFactory, FieldEditor, make_editor
from app.ui.schema_fields import (
    FieldSpec,
    SectionSpec,
    all_fields,
    flatten,
    get_path,
    problem_message,
    problem_path,
    set_path,
    walk_schema,
)
from trainer.config import METHOD_TITLES, METHODS, ConfigError, RunConfig, parse_config


class _FieldRow(QWidget):
    """An editor with its error line underneath."""

    def __init__(self, editor: FieldEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.error = QLabel(self)
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(editor)
        layout.addWidget(self.error)

    def show_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        self.editor.set_invalid(bool(message))


class SchemaForm(QWidget):
    """A form over RunConfig. ``config_changed`` fires after every edit, valid or not."""

    config_changed = Signal()
    validity_changed = Signal(bool)
    method_changed = Signal(str)

    def __init__(
        self,
        overrides: Mapping[str, EditorFactory] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.sections: list[SectionSpec] = walk_schema(RunConfig)
        self.specs: dict[str, FieldSpec] = all_fields(self.sections)
        self.rows: dict[str, _FieldRow] = {}
        self._explicit: dict[str, Any] = {}
        self._method = "sft"
        self._problems: list[str] = []
        self._config: RunConfig | None = None
        self._valid = True
        # per section: (basic group, advanced group); either may be None when empty
        self._groups: dict[str, tuple[QGroupBox | None, QGroupBox | None]] = {}
        self._hidden_sections: set[str] = set()  # shown for another target only (runpod)
        self._build(overrides or {})
        self.revalidate()

    # -- building -------------------------------------------------------------------------------

    def _build(self, overrides: Mapping[str, EditorFactory]) -> None:
        outer = QVBoxLayout(self)
        self.banner = QLabel(self)
        self.banner.setObjectName("formProblems")
        self.banner.setWordWrap(True)
        self.banner.hide()
        outer.addWidget(self.banner)

        method_box = QGroupBox("Method", self)
        method_form = QFormLayout(method_box)
        self.method_combo = QComboBox(method_box)
        self.method_combo.setObjectName("methodPicker")
        for method in METHODS:
            self.method_combo.addItem(METHOD_TITLES.get(method, method), method)
        self.method_combo.setToolTip(RunConfig.model_fields["method"].description or "")
        self.method_combo.currentIndexChanged.connect(self._method_picked)
        method_form.addRow("Method", self.method_combo)
        outer.addWidget(method_box)

        self.advanced_toggle = QToolButton(self)
        self.advanced_toggle.setObjectName("advancedToggle")
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced = QWidget(self)
        advanced_layout = QVBoxLayout(self.advanced)
        advanced_layout.setContentsMargins(0, 0, 0, 0)

        for section in self.sections:
            basic = [f for f in section.fields if f.basic]
            rest = [f for f in section.fields if not f.basic]
            basic_group = self._group(section, basic, overrides, advanced=False)
            rest_group = self._group(section, rest, overrides, advanced=True)
            if basic_group is not None:
                outer.addWidget(basic_group)
            if rest_group is not None:
                advanced_layout.addWidget(rest_group)
            self._groups[section.name] = (basic_group, rest_group)

        outer.addWidget(self.advanced_toggle)
        outer.addWidget(self.advanced)
        outer.addStretch(1)
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self.set_advanced_visible)

    def _group(
        self,
        section: SectionSpec,
        fields: list[FieldSpec],
        overrides: Mapping[str, EditorFactory],
        advanced: bool,
    ) -> QGroupBox | None:
        if not fields:
            return None
        parent = self.advanced if advanced else self
        group = QGroupBox(section.title, parent)
        part = "advanced" if advanced else "basic"
        group.setObjectName(f"section:{section.name or 'run'}:{part}")
        group.setToolTip(section.tooltip)
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in fields:
            factory = overrides.get(spec.path, make_editor)
            editor = factory(spec, group)
            row = _FieldRow(editor, group)
            label = QLabel(spec.label, group)
            label.setToolTip(spec.tooltip)
            label.setBuddy(editor.focus_widget())
            form.addRow(label, row)
            self.rows[spec.path] = row
            editor.edited.connect(lambda path=spec.path: self._edited(path))
        return group

    # -- public face ----------------------------------------------------------------------------

    @property
    def method(self) -> str:
        return self._method

    def set_method(self, method: str) -> None:
        self.method_combo.setCurrentIndex(self.method_combo.findData(method))

    def editor(self, path: str) -> FieldEditor:
        return self.rows[path].editor

    def error_text(self, path: str) -> str:
        row = self.rows[path]
        return row.error.text() if not row.error.isHidden() else ""

    def problems(self) -> list[str]:
        return list(self._problems)

    def is_valid(self) -> bool:
        return self._valid

    def config(self) -> RunConfig:
        """The validated config; ConfigError with every problem when it does not validate."""
        return parse_config(self.config_dict())

    def config_dict(self) -> dict[str, Any]:
        """The method and the values the user set, nested as the config file has them."""
        data: dict[str, Any] = {"method": self._method}
        for path, value in self._explicit.items():
            set_path(data, path, copy.deepcopy(value))
        return data

    def explicit_dict(self) -> dict[str, Any]:
        """What a preset should hold: the set values, as the schema parsed them."""
        data = self.config_dict()
        if self._config is None:
            return data
        dumped = self._config.model_dump(mode="json")
        for path in self._explicit:
            set_path(data, path, get_path(dumped, path))
        return data

    def set_value(self, path: str, value: Any) -> None:
        """Set a field as if the user had typed it."""
        self._explicit[path] = value
        self.rows[path].editor.set_value(value)
        self.revalidate()

    def reset_value(self, path: str) -> None:
        """Forget a value: the field goes back to the schema's default for the method."""
        self._explicit.pop(path, None)
        self.revalidate()

    def load(self, data: Mapping[str, Any]) -> None:
        """Show a config (a preset, an imported file): every field it names counts as set."""
        self._explicit = flatten(dict(data), set(self.specs))
        method = data.get("method", "sft")
        self.method_combo.blockSignals(True)
        index = self.method_combo.findData(method)
        self.method_combo.setCurrentIndex(max(index, 0))
        self.method_combo.blockSignals(False)
        self._method = method if index >= 0 else "sft"
        for path, value in self._explicit.items():
            self.rows[path].editor.set_value(value)
        self._apply_visibility()
        self.revalidate()
        self.method_changed.emit(self._method)

    def set_advanced_visible(self, visible: bool) -> None:
        self.advanced_toggle.blockSignals(True)
        self.advanced_toggle.setChecked(visible)
        self.advanced_toggle.blockSignals(False)
        self.advanced_toggle.setArrowType(
            Qt.ArrowType.DownArrow if visible else Qt.ArrowType.RightArrow
        )
        self.advanced.setVisible(visible)
        self._show_errors()

    def field_shown(self, path: str) -> bool:
        """Whether the field's row is on screen for the current method and Advanced state."""
        spec = self.specs[path]
        section = self._section_of(path)
        if not (self.section_shown(section.name) and spec.used_by(self._method)):
            return False
        return spec.basic or self.advanced_toggle.isChecked()

    def section_shown(self, name: str) -> bool:
        section = next(s for s in self.sections if s.name == name)
        return section.used_by(self._method) and name not in self._hidden_sections

    def set_section_hidden(self, name: str, hidden: bool) -> None:
        """Hide a whole section whatever the method (the runpod section off RunPod)."""
        if hidden:
            self._hidden_sections.add(name)
        else:
            self._hidden_sections.discard(name)
        self._apply_visibility()

    # -- reacting -------------------------------------------------------------------------------

    def _section_of(self, path: str) -> SectionSpec:
        head = path.split(".", 1)[0] if "." in path else ""
        return next(s for s in self.sections if s.name == head)

    def _method_picked(self, index: int) -> None:
        self._method = self.method_combo.itemData(index)
        self._apply_visibility()
        self.revalidate()
        self.method_changed.emit(self._method)

    def _apply_visibility(self) -> None:
        for section in self.sections:
            used = section.used_by(self._method) and section.name not in self._hidden_sections
            for group in self._groups[section.name]:
                if group is not None:
                    group.setVisible(used)
            for spec in section.fields:
                row = self.rows[spec.path]
                visible = used and spec.used_by(self._method)
                host = row.parentWidget()
                form = host.layout() if host is not None else None
                if isinstance(form, QFormLayout):
                    form.setRowVisible(row, visible)

    def _edited(self, path: str) -> None:
        self._explicit[path] = self.rows[path].editor.value()
        self.revalidate()

    def revalidate(self) -> None:
        try:
            self._config = parse_config(self.config_dict())
            self._problems = []
        except ConfigError as err:
            self._config = None
            self._problems = list(err.problems)
        self._show_defaults()
        self._show_errors()
        valid = not self._problems
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)
        self.config_changed.emit()

    def _defaults(self) -> dict[str, Any]:
        """The values a field left alone will get: the method's defaults, LoRA vs full."""
        seed: dict[str, Any] = {"method": self._method}
        kind = self._explicit.get("adapter.kind")
        if isinstance(kind, str):
            seed["adapter"] = {"kind": kind}
        try:
            return parse_config(seed).model_dump(mode="json")
        except ConfigError:
            return parse_config({"method": self._method}).model_dump(mode="json")

    def _show_defaults(self) -> None:
        resolved = (
            self._config.model_dump(mode="json") if self._config is not None else self._defaults()
        )
        for path, row in self.rows.items():
            if path not in self._explicit:
                row.editor.set_value(get_path(resolved, path))

    def _show_errors(self) -> None:
        known = set(self.rows)
        per_field: dict[str, list[str]] = {}
        unplaced: list[str] = []
        for problem in self._problems:
            path = problem_path(problem, known)
            if path is None:
                unplaced.append(problem)
                continue
            per_field.setdefault(path, []).append(problem_message(problem))
            if not self.field_shown(path):
                shown = self._section_of(path).used_by(self._method)
                where = "under Advanced" if shown else f"not used by {self._method}"
                unplaced.append(f"{problem} ({where})")
        for path, row in self.rows.items():
            messages = per_field.get(path)
            row.show_error("\n".join(messages) if messages else None)
        self.banner.setText("\n".join(unplaced))
        self.banner.setVisible(bool(unplaced))
