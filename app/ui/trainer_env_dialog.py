""" "Set up local training": creates the trainer's environment with progress, log, cancel, retry.

Offered on a start where no training environment is found (an installed Tunedeck has none) and
from Settings ▸ Training environment. The work itself is ``app.core.trainer_env``; it runs on a
thread of its own (it takes minutes) and its lines and steps come back through queued signals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.trainer_env import (
    SetupError,
    SetupPlan,
    SetupResult,
    TorchChoice,
    TrainerEnvSetup,
    choose_torch,
    make_plan,
    record_environment,
)

MAX_LOG_LINES = 5000  # pip can print tens of thousands; the whole log is in the file
BUILDS = (("cuda", "CUDA (NVIDIA GPU)"), ("cpu", "CPU only"))


class _Relay(QObject):
    """Carries the worker thread's news to the GUI thread (queued: the receiver lives there)."""

    line = Signal(str)
    step = Signal(int, int, str)
    finished = Signal(object)


class TrainerEnvDialog(QDialog):
    """``ready(python)`` is emitted once an environment passed its check and was recorded."""

    ready = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        plan_factory: Callable[..., SetupPlan] = make_plan,
        record: Callable[[str], Any] = record_environment,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up local training")
        self.setMinimumSize(720, 480)
        self._plan_factory = plan_factory
        self._record = record
        self._setup: TrainerEnvSetup | None = None
        self._thread: threading.Thread | None = None
        self.result_: SetupResult | None = None
        self._relay = _Relay(self)
        self._relay.line.connect(self._append, Qt.ConnectionType.QueuedConnection)
        self._relay.step.connect(self._show_step, Qt.ConnectionType.QueuedConnection)
        self._relay.finished.connect(self._finished, Qt.ConnectionType.QueuedConnection)

        intro = QLabel(
            "Training runs in a Python environment of its own, with torch, Transformers and TRL "
            "(about 1.5 GB for the CPU build, several GB for CUDA). Tunedeck creates it once; "
            "setting up again over a broken one repairs it."
        )
        intro.setWordWrap(True)
        detected = self._detected = choose_torch()
        self.build = QComboBox()
        for key, label in BUILDS:
            self.build.addItem(label, key)
        self.build.setCurrentIndex(0 if detected.build == "cuda" else 1)
        self.build.currentIndexChanged.connect(self._build_changed)
        self.index = QLineEdit(detected.index_url or "")
        self.index.setPlaceholderText("the package registry's default")
        self.reason = QLabel(f"Detected: {detected.reason}")
        self.reason.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Torch build", self.build)
        form.addRow("Torch from", self.index)
        form.addRow("", self.reason)

        self.plan_text = QLabel()
        self.plan_text.setObjectName("trainerEnvPlan")
        self.plan_text.setWordWrap(True)
        self.plan_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Not started.")
        self.status.setObjectName("trainerEnvStatus")
        self.status.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setObjectName("trainerEnvLog")

        self.start_button = QPushButton("Set up")
        self.start_button.setObjectName("trainerEnvStart")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("trainerEnvCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.plan_text)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.log, 1)
        layout.addLayout(buttons)
        self._set_running(False)
        self._refresh_plan()

    # ---- the choice -----------------------------------------------------------------------

    def _build_changed(self) -> None:
        choice = choose_torch(self.build.currentData())
        self.index.setText(choice.index_url or "")
        self.reason.setText(f"Chosen: {choice.describe()}")
        self._refresh_plan()

    def torch_choice(self) -> TorchChoice:
        build = str(self.build.currentData())
        index = self.index.text().strip() or None
        detected = self._detected
        reason = detected.reason if build == detected.build else choose_torch(build).reason
        return TorchChoice(build, index, reason)

    def _refresh_plan(self) -> SetupPlan | None:
        try:
            plan = self._plan_factory(torch=self.torch_choice())
        except SetupError as err:
            self.plan_text.setText(f"{err}\n{err.hint}".strip())
            self.start_button.setEnabled(False)
            return None
        self.plan_text.setText(plan.describe())
        return plan

    # ---- running ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.build.setEnabled(not running)
        self.index.setEnabled(not running)
        self.close_button.setEnabled(not running)

    def start(self) -> None:
        """Set up (or, after a failure or a cancel, set up again: the same, from scratch)."""
        if self.running:
            return
        plan = self._refresh_plan()
        if plan is None:
            return
        relay = self._relay
        self._setup = TrainerEnvSetup(
            plan, on_line=relay.line.emit, on_step=lambda i, n, t: relay.step.emit(i, n, t)
        )
        self.result_ = None
        self.log.clear()
        self.progress.setRange(0, len(plan.steps()) + 1)
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self._set_running(True)
        setup = self._setup
        self._thread = threading.Thread(
            target=lambda: relay.finished.emit(setup.run()),
            name="tunedeck-trainer-env",
            daemon=True,
        )
        self._thread.start()

    def cancel(self) -> None:
        if self._setup is not None and self.running:
            self.status.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
            self._setup.cancel()

    def _append(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _show_step(self, number: int, total: int, title: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(number - 1)
        self.status.setText(f"Step {number} of {total}: {title}…")

    def _finished(self, result: SetupResult) -> None:
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self.result_ = result
        self._set_running(False)
        if result.ok:
            self.progress.setValue(self.progress.maximum())
            try:
                self._record(result.python)
            except OSError as err:
                self.status.setText(f"Ready, but the settings could not be saved: {err}")
            else:
                self.status.setText(f"Ready: local runs now use {result.python}. {result.message}")
            self.start_button.setText("Set up again")
            self.ready.emit(result.python)
            return
        self.start_button.setText("Retry")
        where = f" The whole log: {result.log_path}." if result.log_path else ""
        self.status.setText(f"{result.message}{where}")

    def reject(self) -> None:
        if self.running:  # closing while it runs would leave pip half done: cancel first
            self.cancel()
            return
        super().reject()


def offer_training_setup(parent: QWidget, on_ready: Callable[[str], None]) -> TrainerEnvDialog:
    """Open the dialog (not modal: the app stays usable; ``parent`` keeps it alive) and call
    ``on_ready(python)`` when an environment is ready."""
    dialog = TrainerEnvDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.ready.connect(on_ready)
    dialog.status.setText(
        "No training environment was found: local training needs one. Set it up now, or "
        "later from Settings ▸ Training environment."
    )
    dialog.show()  # not open(): that is modal to the window, and the setup takes minutes
    return dialog
