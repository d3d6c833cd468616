"""The "Try" tab of the job view: chat with a finished or cancelled job's model (or any of its
checkpoints), side by side with its base model or another job's, and run prompt sets through
both.

Each model runs in its own ``python -m trainer chat`` process (app.core.chat_session); events
come back on reader threads and are posted to the GUI thread through the bridge. Tokens are
inserted into the transcript as they arrive. The processes stay up while this job is shown and
are released when another job is selected, when the tab is closed, and after
``ChatSessions.idle_release_s`` without use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.chat_session import (
    TRY_STATUSES,
    ChatSession,
    ChatSessions,
    ChatTarget,
    ChatUnavailable,
    GenerationSettings,
)
from app.core.prompt_sets import (
    PromptRow,
    read_prompt_file,
    rows_from_events,
    typed_prompts,
    write_csv,
    write_jsonl,
)
from app.core.trainer_python import launch_python
from app.core.trainer_subprocess import TrainerProcessError
from app.ui.bridge import Bridge

SLOTS = ("A", "B")
IDLE_CHECK_MS = 30_000
HELD_OUT_LIMIT = 200


@dataclass
class _Request:
    slot: str
    kind: str  # "chat", "set" or "rows"
    row: int = -1


class ChatPane(QWidget):
    """One model's side of the chat: its status, transcript and conversation."""

    def __init__(self, slot: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slot = slot
        self.setObjectName(f"tryPane{slot}")
        self.title = QLabel("", self)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.status = QLabel("", self)
        self.status.setObjectName(f"tryStatus{slot}")
        self.status.setWordWrap(True)
        self.view = QPlainTextEdit(self)
        self.view.setObjectName(f"tryTranscript{slot}")
        self.view.setReadOnly(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        self.history: list[dict[str, str]] = []
        self.request_id: str | None = None
        self.answer = ""
        self.updates = 0  # token updates shown (all requests)
        self.last_reason: str | None = None

    def clear(self) -> None:
        self.history, self.request_id, self.answer = [], None, ""
        self.view.clear()

    def _append(self, text: str) -> None:
        cursor = self.view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.view.setTextCursor(cursor)
        self.view.ensureCursorVisible()

    def begin(self, request_id: str, user_text: str, model_label: str) -> None:
        self.request_id, self.answer, self.last_reason = request_id, "", None
        self._append(f"You: {user_text}\n\n{model_label}: ")

    def token(self, text: str) -> None:
        self.answer += text
        self.updates += 1
        self._append(text)

    def finish(self, text: str, reason: str) -> None:
        self.answer = text
        self.last_reason = reason
        self.history.append({"role": "assistant", "content": text})
        self.request_id = None
        self._append(" [stopped]\n\n" if reason == "stopped" else "\n\n")

    def fail(self, message: str) -> None:
        self.request_id = None
        if self.history and self.history[-1]["role"] == "user":
            self.history.pop()  # the turn got no answer: it is not part of the conversation
        self._append(f"\n[{message}]\n\n")


class TryTab(QWidget):
    """``show_job(job_id)`` offers that job's models; see the module docstring."""

    answered = Signal(str, str)  # slot, answer: a chat answer finished

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tryTab")
        self.job_id: str | None = None
        self.targets_of: Callable[[str], list[ChatTarget]] | None = None
        self.others_of: Callable[[str], list[ChatTarget]] = lambda job_id: []
        self._bridge = Bridge(self)
        self.sessions = ChatSessions(
            on_event=lambda session, event: self._bridge.post(self._on_event, session, event)
        )
        self._requests: dict[str, _Request] = {}
        self.set_rows: list[PromptRow] = []
        self._set_queue: dict[str, list[int]] = {}
        self._build()
        self._idle_timer = QTimer(self)
        self._idle_timer.setInterval(IDLE_CHECK_MS)
        self._idle_timer.timeout.connect(self._release_idle)
        self._idle_timer.start()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.release)
        self.show_job(None)

    # -- wiring -------------------------------------------------------------------------------

    def attach(
        self,
        targets_of: Callable[[str], list[ChatTarget]],
        *,
        others_of: Callable[[str], list[ChatTarget]] | None = None,
        python: Callable[[], str | None] = launch_python,
        idle_release_s: float | None = None,
    ) -> None:
        """Where the models come from (app.core.chat_session.ChatCatalog) and which Python
        runs them (``launch_python``; the running app passes its in-memory settings)."""
        self.targets_of = targets_of
        if others_of is not None:
            self.others_of = others_of
        self.sessions.python = python
        if idle_release_s is not None:
            self.sessions.idle_release_s = idle_release_s
        if self.job_id is not None:  # a job shown before the models' source was known
            job_id, self.job_id = self.job_id, None
            self.show_job(job_id)

    # -- building -----------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.message = QLabel("", self)
        self.message.setObjectName("tryMessage")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

        self.body = QWidget(self)
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        pick = QHBoxLayout()
        self.model_a = QComboBox(self.body)
        self.model_a.setObjectName("tryModelA")
        self.side_by_side = QCheckBox("Side by side with", self.body)
        self.side_by_side.setObjectName("trySideBySide")
        self.side_by_side.setChecked(True)
        self.model_b = QComboBox(self.body)
        self.model_b.setObjectName("tryModelB")
        pick.addWidget(QLabel("Model", self.body))
        pick.addWidget(self.model_a, 1)
        pick.addWidget(self.side_by_side)
        pick.addWidget(self.model_b, 1)
        body.addLayout(pick)

        settings = QHBoxLayout()
        form = QFormLayout()
        self.system = QLineEdit(self.body)
        self.system.setObjectName("trySystem")
        self.system.setPlaceholderText("optional system prompt")
        form.addRow("System", self.system)
        settings.addLayout(form, 3)
        self.temperature = QDoubleSpinBox(self.body)
        self.temperature.setObjectName("tryTemperature")
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setValue(0.7)
        self.temperature.setToolTip("0 is greedy: always the most likely token")
        self.top_p = QDoubleSpinBox(self.body)
        self.top_p.setObjectName("tryTopP")
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(0.95)
        self.max_new = QSpinBox(self.body)
        self.max_new.setObjectName("tryMaxNewTokens")
        self.max_new.setRange(1, 8192)
        self.max_new.setValue(256)
        self.seed = QSpinBox(self.body)
        self.seed.setObjectName("trySeed")
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setValue(-1)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("the same seed gives the same sampled answer")
        self.ignore_eos = QCheckBox("Ignore end of text", self.body)
        self.ignore_eos.setObjectName("tryIgnoreEos")
        self.ignore_eos.setToolTip("keep generating up to the maximum even past end-of-text")
        for label, widget in (
            ("Temperature", self.temperature),
            ("Top-p", self.top_p),
            ("Max new tokens", self.max_new),
            ("Seed", self.seed),
        ):
            settings.addWidget(QLabel(label, self.body))
            settings.addWidget(widget)
        settings.addWidget(self.ignore_eos)
        body.addLayout(settings)

        self.modes = QTabWidget(self.body)
        self.modes.addTab(self._build_chat(), "Chat")
        self.modes.addTab(self._build_prompt_set(), "Prompt set")
        body.addWidget(self.modes, 1)
        layout.addWidget(self.body, 1)

        self.model_a.currentIndexChanged.connect(self._models_changed)
        self.model_b.currentIndexChanged.connect(self._models_changed)
        self.side_by_side.toggled.connect(self._models_changed)

    def _build_chat(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        self.panes = {slot: ChatPane(slot, page) for slot in SLOTS}
        self.split = QSplitter(Qt.Orientation.Horizontal, page)
        for n, pane in enumerate(self.panes.values()):
            self.split.addWidget(pane)
            self.split.setStretchFactor(n, 1)
        layout.addWidget(self.split, 1)
        row = QHBoxLayout()
        self.input = QPlainTextEdit(page)
        self.input.setObjectName("tryInput")
        self.input.setPlaceholderText("Type a message (Ctrl+Enter sends)")
        self.input.setMaximumHeight(72)
        self.send_button = QPushButton("Send", page)
        self.send_button.setObjectName("trySend")
        self.stop_button = QPushButton("Stop", page)
        self.stop_button.setObjectName("tryStop")
        self.stop_button.setEnabled(False)
        self.new_chat_button = QPushButton("New chat", page)
        self.new_chat_button.setObjectName("tryNewChat")
        buttons = QVBoxLayout()
        for b in (self.send_button, self.stop_button, self.new_chat_button):
            buttons.addWidget(b)
        row.addWidget(self.input, 1)
        row.addLayout(buttons)
        layout.addLayout(row)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.new_chat_button.clicked.connect(self.new_chat)
        send = QShortcut(QKeySequence("Ctrl+Return"), self.input)
        send.activated.connect(self.send)
        return page

    def _build_prompt_set(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        top = QHBoxLayout()
        self.prompts = QPlainTextEdit(page)
        self.prompts.setObjectName("tryPrompts")
        self.prompts.setPlaceholderText("One prompt a line, or load a file, or the held-out rows")
        self.prompts.setMaximumHeight(90)
        top.addWidget(self.prompts, 1)
        buttons = QVBoxLayout()
        self.load_file_button = QPushButton("Load file…", page)
        self.held_out_button = QPushButton("Held-out rows", page)
        self.held_out_button.setObjectName("tryHeldOut")
        self.held_out_button.setToolTip("the rows this run kept out of training, with answers")
        self.run_set_button = QPushButton("Run", page)
        self.run_set_button.setObjectName("tryRunSet")
        for b in (self.load_file_button, self.held_out_button, self.run_set_button):
            buttons.addWidget(b)
        top.addLayout(buttons)
        layout.addLayout(top)
        self.table = QTableWidget(0, 4, page)
        self.table.setObjectName("tryTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        self.set_status = QLabel("", page)
        self.set_status.setObjectName("trySetStatus")
        self.export_jsonl_button = QPushButton("Export JSONL…", page)
        self.export_csv_button = QPushButton("Export CSV…", page)
        bottom.addWidget(self.set_status, 1)
        bottom.addWidget(self.export_jsonl_button)
        bottom.addWidget(self.export_csv_button)
        layout.addLayout(bottom)
        self.load_file_button.clicked.connect(self._ask_prompt_file)
        self.held_out_button.clicked.connect(self.load_held_out)
        self.run_set_button.clicked.connect(self.run_prompt_set)
        self.export_jsonl_button.clicked.connect(lambda: self._ask_export("jsonl"))
        self.export_csv_button.clicked.connect(lambda: self._ask_export("csv"))
        return page

    # -- which job and models -------------------------------------------------------------------

    def show_job(self, job_id: str | None) -> None:
        """Offer ``job_id``'s models (None: nothing). The models of the job shown before are
        released."""
        if job_id == self.job_id and job_id is not None:
            return
        self.release()
        self.job_id = job_id
        for pane in self.panes.values():
            pane.clear()
            pane.status.setText("")
        self.set_rows = []
        self._fill_table()
        targets: list[ChatTarget] = []
        problem = "Select a finished or cancelled job to try its model."
        if job_id is not None and self.targets_of is not None:
            try:
                targets = self.targets_of(job_id)
                problem = ""
            except ChatUnavailable as err:
                problem = str(err)
        self.message.setText(problem)
        self.message.setVisible(bool(problem))
        self.body.setEnabled(bool(targets))
        self._fill_combos(targets, self.others_of(job_id) if targets and job_id else [])
        if targets and self.isVisible():
            self.ensure_loaded()

    def job_changed(self, job_id: str, status: str) -> None:
        """The shown job's row changed (it finished, say): offer its models if it had none."""
        if job_id == self.job_id and status in TRY_STATUSES and not self.body.isEnabled():
            self.job_id = None
            self.show_job(job_id)

    def _fill_combos(self, own: list[ChatTarget], others: list[ChatTarget]) -> None:
        for combo in (self.model_a, self.model_b):
            combo.blockSignals(True)
            combo.clear()
        for target in own:
            self.model_a.addItem(target.label, target)
        for target in [*own, *others]:
            self.model_b.addItem(target.label, target)
        bases = [i for i, t in enumerate(own) if t.base]
        self.model_b.setCurrentIndex(bases[0] if bases else -1)
        for combo in (self.model_a, self.model_b):
            combo.blockSignals(False)
        self._models_changed()

    def target(self, slot: str) -> ChatTarget | None:
        if slot == "B" and not self.side_by_side.isChecked():
            return None
        combo = self.model_a if slot == "A" else self.model_b
        data = combo.currentData()
        return data if isinstance(data, ChatTarget) else None

    def active_slots(self) -> list[str]:
        return [slot for slot in SLOTS if self.target(slot) is not None]

    def labels(self) -> dict[str, str]:
        return {slot: t.label for slot in SLOTS if (t := self.target(slot)) is not None}

    def _models_changed(self, *_: Any) -> None:
        self.model_b.setEnabled(self.side_by_side.isChecked())
        self.panes["B"].setVisible(self.side_by_side.isChecked())
        self.split.setSizes([1_000_000] * len(SLOTS))  # the models get the same width
        for slot in SLOTS:
            target = self.target(slot)
            self.panes[slot].title.setText(target.label if target else "")
        self._fill_table()
        if self.isVisible() and self.job_id is not None:
            self.ensure_loaded()

    def session(self, slot: str) -> ChatSession | None:
        target = self.target(slot)
        return self.sessions.find(target.key) if target is not None else None

    def ensure_loaded(self) -> None:
        """Start the chosen models' processes (they load in the background)."""
        from app.core.launcher import LaunchError  # the launchers' import chain, on first use

        for slot in self.active_slots():
            target = self.target(slot)
            assert target is not None
            existing = self.sessions.find(target.key)
            if existing is not None and existing.running:
                continue
            try:
                self.sessions.get(target)
            except TrainerProcessError as err:
                self.panes[slot].status.setText(f"Cannot start the model: {err}")
                continue
            except LaunchError as err:  # no training environment: what to set up
                self.panes[slot].status.setText(f"Cannot start the model: {err}.\n{err.hint}")
                continue
            self.panes[slot].status.setText("Loading the model…")

    # -- chat -----------------------------------------------------------------------------------

    def settings(self) -> GenerationSettings:
        seed = self.seed.value()
        return GenerationSettings(
            system=self.system.text().strip(),
            temperature=round(self.temperature.value(), 4),
            top_p=round(self.top_p.value(), 4),
            max_new_tokens=self.max_new.value(),
            seed=None if seed < 0 else seed,
        )

    def _extra(self) -> dict[str, Any]:
        return {"min_new_tokens": self.max_new.value()} if self.ignore_eos.isChecked() else {}

    @property
    def generating(self) -> bool:
        return any(r.kind in ("chat", "set") for r in self._requests.values())

    def send(self) -> None:
        """Send the typed message to each model shown, with its own conversation so far."""
        text = self.input.toPlainText().strip()
        if not text or self.job_id is None or self.generating:
            return
        self.ensure_loaded()
        sent = False
        for slot in self.active_slots():
            session, pane = self.session(slot), self.panes[slot]
            if session is None:
                continue
            pane.history.append({"role": "user", "content": text})
            try:
                request_id = session.generate(pane.history, self.settings(), **self._extra())
            except TrainerProcessError as err:
                pane.fail(str(err))
                continue
            self._requests[request_id] = _Request(slot, "chat")
            pane.begin(request_id, text, session.target.short_label)
            sent = True
        if sent:
            self.input.clear()
        self._update_buttons()

    def stop(self) -> None:
        """Stop every generation in progress (chat and prompt set)."""
        self._set_queue.clear()
        for slot in SLOTS:
            session = self.session(slot)
            if session is not None:
                session.stop()

    def new_chat(self) -> None:
        self.stop()
        for pane in self.panes.values():
            pane.clear()

    def _update_buttons(self) -> None:
        busy = self.generating
        self.send_button.setEnabled(not busy)
        self.run_set_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    # -- prompt sets ----------------------------------------------------------------------------

    def use_prompts(self, rows: list[PromptRow], source: str) -> None:
        self.set_rows = rows
        self._fill_table()
        self.set_status.setText(f"{len(rows)} prompts from {source}")

    def _ask_prompt_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Prompts", "", "Prompts (*.txt *.jsonl *.json *.csv *.parquet);;All files (*)"
        )
        if path:
            self.load_prompt_file(Path(path))

    def load_prompt_file(self, path: Path) -> None:
        from trainer.data.formats import DatasetError  # not before the window's first paint

        try:
            rows = read_prompt_file(path)
        except DatasetError as err:
            self.set_status.setText(str(err))
            return
        self.use_prompts(rows, path.name)

    def load_held_out(self) -> None:
        """Ask model A's process for the run's held-out rows (read and split as the run did)."""
        self.ensure_loaded()
        session = self.session("A")
        if session is None:
            return
        try:
            request_id = session.request_rows("eval", HELD_OUT_LIMIT)
        except TrainerProcessError as err:
            self.set_status.setText(str(err))
            return
        self._requests[request_id] = _Request("A", "rows")
        self.set_status.setText("Reading the held-out rows…")

    def run_prompt_set(self) -> None:
        """Each prompt through each model shown, one at a time per model, both at once."""
        if not self.set_rows and self.prompts.toPlainText().strip():
            self.use_prompts(typed_prompts(self.prompts.toPlainText()), "the typed list")
        if not self.set_rows or self.generating:
            return
        self.ensure_loaded()
        for row in self.set_rows:
            row.answers.clear()
        self._fill_table()
        self._set_queue = {slot: list(range(len(self.set_rows))) for slot in self.active_slots()}
        for slot in list(self._set_queue):
            self._next_in_set(slot)
        self._update_buttons()

    def _next_in_set(self, slot: str) -> None:
        queue = self._set_queue.get(slot)
        session = self.session(slot)
        if not queue or session is None:
            self._set_queue.pop(slot, None)
            self._set_finished()
            return
        row = queue.pop(0)
        try:
            request_id = session.generate(
                self.set_rows[row].prompt, self.settings(), **self._extra()
            )
        except TrainerProcessError as err:
            self.set_status.setText(str(err))
            self._set_queue.pop(slot, None)
            return
        self._requests[request_id] = _Request(slot, "set", row)

    def _set_finished(self) -> None:
        if not self._set_queue and not any(r.kind == "set" for r in self._requests.values()):
            done = sum(1 for r in self.set_rows if r.answers)
            self.set_status.setText(f"{done} of {len(self.set_rows)} prompts answered")

    def _fill_table(self) -> None:
        labels = self.labels()
        headers = ["Prompt", "Reference", *labels.values()]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(self.set_rows))
        for n, row in enumerate(self.set_rows):
            cells = [
                row.shown,
                row.reference or "",
                *(row.answers.get(name, "") for name in labels.values()),
            ]
            for col, text in enumerate(cells):
                self.table.setItem(n, col, QTableWidgetItem(text))

    def _set_cell(self, row: int, slot: str) -> None:
        label = self.labels().get(slot)
        if label is None or row >= len(self.set_rows):
            return
        column = 2 + list(self.labels()).index(slot)
        self.table.setItem(row, column, QTableWidgetItem(self.set_rows[row].answers.get(label, "")))

    def _ask_export(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export prompt set", f"prompt-set.{kind}", f"{kind.upper()} (*.{kind})"
        )
        if path:
            self.export(Path(path), kind)

    def export(self, path: Path, kind: str) -> None:
        labels = list(self.labels().values())
        writer = write_jsonl if kind == "jsonl" else write_csv
        try:
            writer(path, self.set_rows, labels)
        except OSError as err:
            self.set_status.setText(f"{path}: cannot be written ({err.strerror or err})")
            return
        self.set_status.setText(f"Wrote {len(self.set_rows)} rows to {path}")

    # -- events (GUI thread) --------------------------------------------------------------------

    def _slots_of(self, session: ChatSession) -> list[str]:
        return [s for s in self.active_slots() if self.session(s) is session]

    def _on_event(self, session: ChatSession, event: dict[str, Any]) -> None:
        if self.sessions.find(session.target.key) is not session:
            return  # a released process's last words
        kind = event.get("event")
        request = self._requests.get(str(event.get("id", "")))
        if kind == "ready":
            text = f"Ready · {event.get('device')} · {event.get('dtype')}"
            if not event.get("template"):
                text += " · no chat template: text is continued as written"
            if event.get("note"):
                text += f" · {event['note']}"
            for slot in self._slots_of(session):
                self.panes[slot].status.setText(text)
        elif kind in ("error", "exit", "cancelled"):
            self._ended(session, event)
        elif request is not None:
            self._answer_event(request, str(event["id"]), event)

    def _answer_event(self, request: _Request, request_id: str, event: dict[str, Any]) -> None:
        kind = event.get("event")
        pane = self.panes[request.slot]
        label = self.labels().get(request.slot, "")
        if kind == "token":
            if request.kind == "chat" and pane.request_id == request_id:
                pane.token(str(event.get("text", "")))
            elif request.kind == "set" and request.row < len(self.set_rows):
                answers = self.set_rows[request.row].answers
                answers[label] = answers.get(label, "") + str(event.get("text", ""))
                self._set_cell(request.row, request.slot)
            return
        if kind not in ("done", "failed", "rows"):
            return
        del self._requests[request_id]
        if kind == "rows":
            self.use_prompts(rows_from_events(event.get("rows", [])), "the held-out rows")
            if event.get("note"):
                self.set_status.setText(str(event["note"]))
        elif request.kind == "chat":
            if kind == "done":
                pane.finish(str(event.get("text", "")), str(event.get("reason", "")))
                self.answered.emit(request.slot, pane.answer)
            else:
                pane.fail(f"{event.get('message')} {event.get('hint') or ''}".strip())
        elif request.kind == "set":
            if request.row < len(self.set_rows):
                text = str(event.get("text", "")) if kind == "done" else f"[{event.get('message')}]"
                self.set_rows[request.row].answers[label] = text
                self._set_cell(request.row, request.slot)
            self._next_in_set(request.slot)
        self._update_buttons()

    def _ended(self, session: ChatSession, event: dict[str, Any]) -> None:
        message = session.error or "The model's process ended; Send starts it again."
        for slot in self._slots_of(session):
            if event.get("event") == "error" or self.panes[slot].status.text() != message:
                self.panes[slot].status.setText(message)
        mine = [rid for rid, r in self._requests.items() if self.session(r.slot) is session]
        for rid in mine:
            request = self._requests.pop(rid)
            if request.kind == "chat":
                self.panes[request.slot].fail("no answer: the model's process ended")
            self._set_queue.pop(request.slot, None)
        if event.get("event") == "exit":
            self.sessions.sessions.pop(session.target.key, None)
            session.close()
        self._update_buttons()

    # -- lifetime -------------------------------------------------------------------------------

    def _release_idle(self) -> None:
        for key in self.sessions.release_idle():
            for slot in SLOTS:
                target = self.target(slot)
                if target is not None and target.key == key:
                    self.panes[slot].status.setText(
                        "Released after a while unused; Send loads it again."
                    )

    def release(self) -> None:
        """End every model process this tab started."""
        self._requests.clear()
        self._set_queue.clear()
        self.sessions.release_all()
        self._update_buttons()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.job_id is not None and self.body.isEnabled():
            self.ensure_loaded()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.release()
        super().closeEvent(event)
