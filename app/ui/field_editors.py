"""One editor widget per kind of schema field (see schema_fields.FieldSpec.kind).

Every editor has the same small face: ``value()`` gives what the user typed, in a form pydantic
can validate (so a bad number reaches the schema and comes back with the schema's own message),
``set_value()`` shows a value without counting as an edit, and ``edited`` fires on user edits
only. Errors are shown by the form, next to the editor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.ui.schema_fields import INT_MAX, INT_MIN, FieldSpec

NONE_TEXT = "none"


class FieldEditor(QWidget):
    """Base class: a widget that edits one schema field."""

    edited = Signal()

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.setToolTip(spec.tooltip)
        self.setObjectName(f"field:{spec.path}")

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def focus_widget(self) -> QWidget:
        return self

    def set_invalid(self, invalid: bool) -> None:
        # style.qss draws a red border on [invalid="true"]
        target = self.focus_widget()
        target.setProperty("invalid", invalid)
        target.style().unpolish(target)
        target.style().polish(target)


def _hbox(parent: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout(parent)
    layout.setContentsMargins(0, 0, 0, 0)
    return layout


class BoolEditor(FieldEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.box = QCheckBox(self)
        self.box.setToolTip(spec.tooltip)
        _hbox(self).addWidget(self.box)
        self.box.toggled.connect(self.edited)

    def value(self) -> bool:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(bool(value))
        self.box.blockSignals(False)

    def focus_widget(self) -> QWidget:
        return self.box


class ChoiceEditor(FieldEditor):
    def __init__(
        self,
        spec: FieldSpec,
        parent: QWidget | None = None,
        titles: dict[Any, str] | None = None,
    ) -> None:
        super().__init__(spec, parent)
        self.combo = QComboBox(self)
        self.combo.setToolTip(spec.tooltip)
        choices = list(spec.choices)
        if spec.optional:
            choices.insert(0, None)
        for choice in choices:
            text = (titles or {}).get(choice, NONE_TEXT if choice is None else str(choice))
            self.combo.addItem(text, choice)
        _hbox(self).addWidget(self.combo)
        self.combo.currentIndexChanged.connect(self.edited)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        index = self.combo.findData(value)
        if index < 0:  # a value the schema does not list: show it so validation can say so
            self.combo.addItem(str(value), value)
            index = self.combo.count() - 1
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)

    def focus_widget(self) -> QWidget:
        return self.combo


class IntEditor(FieldEditor):
    """A spin box limited to the schema's range; an optional field shows "none" at the bottom."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.spin = QSpinBox(self)
        self.spin.setToolTip(spec.tooltip)
        low = int(spec.minimum) if spec.minimum is not None else INT_MIN + 1
        high = int(min(spec.maximum, INT_MAX)) if spec.maximum is not None else INT_MAX
        if spec.optional:
            # Qt idiom: the minimum shows specialValueText, and stands for "no value"
            low -= 1
            self.spin.setSpecialValueText(NONE_TEXT)
        self.spin.setRange(max(low, INT_MIN), high)
        self.spin.setAccelerated(True)
        _hbox(self).addWidget(self.spin)
        self.spin.valueChanged.connect(self.edited)

    def value(self) -> int | None:
        if self.spec.optional and self.spin.value() == self.spin.minimum():
            return None
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self.spin.minimum() if value is None else int(value))
        self.spin.blockSignals(False)

    def focus_widget(self) -> QWidget:
        return self.spin


class TextEditor(FieldEditor):
    """A line edit. Floats use it too, so that 2e-4 can be typed and a bad number is reported by
    the schema rather than silently refused by a validator."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.line = QLineEdit(self)
        self.line.setToolTip(spec.tooltip)
        if spec.optional:
            self.line.setPlaceholderText(NONE_TEXT)
        # a row (line edit, buttons) in a column that subclasses may add to
        self.column_ = QVBoxLayout(self)
        self.column_.setContentsMargins(0, 0, 0, 0)
        self.layout_ = QHBoxLayout()
        self.column_.addLayout(self.layout_)
        self.layout_.addWidget(self.line)
        self.line.textEdited.connect(self.edited)

    def value(self) -> Any:
        text = self.line.text().strip()
        if not text and self.spec.optional:
            return None
        if self.spec.kind == "list":
            return [part.strip() for part in text.split(",") if part.strip()]
        return text

    def set_value(self, value: Any) -> None:
        if value is None:
            text = ""
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        elif isinstance(value, float):
            text = repr(value)  # round-trips exactly: 5e-05 stays 5e-05
        else:
            text = str(value)
        if text != self.line.text():
            self.line.setText(text)

    def focus_widget(self) -> QWidget:
        return self.line


class PathEditor(TextEditor):
    """A line edit with a Browse button (a folder for "path", a file for "file"/"dataset",
    a model folder for "model" next to a Hub id typed in the box)."""

    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        label = "Folder…" if spec.kind in ("path", "model") else "Browse…"
        self.browse = QPushButton(label, self)
        self.browse.setToolTip(
            "Pick a local model folder" if spec.kind == "model" else f"Choose {spec.label.lower()}"
        )
        self.layout_.addWidget(self.browse)
        self.browse.clicked.connect(self._browse)
        if spec.kind == "model":
            self.line.setPlaceholderText("Hub id (owner/name) or a local folder")

    def _browse(self) -> None:
        if self.spec.kind in ("path", "model"):
            chosen = QFileDialog.getExistingDirectory(self, self.spec.label, self.line.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.spec.label, self.line.text())
        if chosen:
            self.line.setText(chosen)
            self.edited.emit()


class MultilineEditor(FieldEditor):
    def __init__(self, spec: FieldSpec, parent: QWidget | None = None) -> None:
        super().__init__(spec, parent)
        self.text = QPlainTextEdit(self)
        self.text.setToolTip(spec.tooltip)
        self.text.setPlaceholderText(NONE_TEXT if spec.optional else "")
        self.text.setFixedHeight(72)
        _hbox(self).addWidget(self.text)
        self.text.textChanged.connect(self._changed)
        self._setting = False

    def _changed(self) -> None:
        if not self._setting:
            self.edited.emit()

    def value(self) -> str | None:
        text = self.text.toPlainText()
        return None if not text.strip() and self.spec.optional else text

    def set_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if text != self.text.toPlainText():
            self._setting = True
            self.text.setPlainText(text)
            self._setting = False

    def focus_widget(self) -> QWidget:
        return self.text


EditorFactory = Callable[[FieldSpec, QWidget | None], FieldEditor]

EDITORS: dict[str, EditorFactory] = {
    "bool": BoolEditor,
    "choice": ChoiceEditor,
    "int": IntEditor,
    "float": TextEditor,
    "text": TextEditor,
    "list": TextEditor,
    "multiline": MultilineEditor,
    "path": PathEditor,
    "file": PathEditor,
    "dataset": PathEditor,
    "model": PathEditor,
}


def make_editor(spec: FieldSpec, parent: QWidget | None = None) -> FieldEditor:
    return EDITORS[spec.kind](spec, parent)
