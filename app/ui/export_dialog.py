"""Export a finished job's model: merged safetensors, GGUF (f16 or q8_0) with an Ollama
Modelfile, or a Hugging Face Hub repository (private unless ticked otherwise).

The work runs in the trainer's environment (``python -m trainer export`` through
app.core.model_export and app.core.trainer_subprocess); its JSON-lines events move the progress
bar and the size line here. Cancel stops it (nothing half-written is left); a destination folder
that holds anything is only written into after the user says so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.jobs import Job
from app.core.model_export import (
    GGUF_TYPES,
    ExportKind,
    ExportRefused,
    ExportRequest,
    destination_in_use,
    human_size,
    job_config,
    remove_partials,
    start_export,
)
from app.core.trainer_subprocess import TrainerProcess, TrainerProcessError
from app.ui.bridge import Bridge
from app.ui.off_thread import OffThread

KINDS: tuple[tuple[ExportKind, str], ...] = (
    ("merged", "Merged model (safetensors, for transformers and vLLM)"),
    ("gguf", "GGUF for llama.cpp and Ollama (with a Modelfile)"),
    ("hub", "Hugging Face Hub repository"),
)
TokenSource = Callable[[], str | None]
ConfirmOverwrite = Callable[[Path], bool]


def ask_overwrite(parent: QWidget, folder: Path) -> bool:
    answer = QMessageBox.question(
        parent,
        "Folder not empty",
        f"{folder} already holds files.\n\nWrite the export into it anyway? Files of the same "
        "name are replaced; other files are left alone.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class ExportDialog(QDialog):
    def __init__(
        self,
        job: Job,
        *,
        python: str,
        token_source: TokenSource | None = None,
        confirm_overwrite: ConfirmOverwrite | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle(f"Export {job.name}")
        self.job = job
        self.python = python
        self.token_source = token_source
        self.confirm_overwrite = confirm_overwrite or (lambda folder: ask_overwrite(self, folder))
        self.process: TrainerProcess | None = None
        self._request: ExportRequest | None = None
        self.outcome: dict[str, Any] | None = None
        self.error: str | None = None
        self._generation = 0
        self._bridge = Bridge(self)
        self._off_thread = OffThread(self)
        self._scratch = tempfile.TemporaryDirectory(prefix="tunedeck-export-")
        self._out = Path(job.output_dir) if job.output_dir else Path.home()
        try:
            self._hub_default = job_config(job).output.hub_repo or ""
        except Exception:  # an old or odd stored config: only the default repo name is lost
            self._hub_default = ""
        self._build()
        self._kind_changed()

    # -- building -------------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        intro = QLabel(f"Job {self.job.id} · {self.job.method} · {self.job.model}", self)
        intro.setObjectName("exportJob")
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(intro)
        form = QFormLayout()
        self.kind = QComboBox(self)
        self.kind.setObjectName("exportKind")
        for key, text in KINDS:
            self.kind.addItem(text, key)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        form.addRow("Export as", self.kind)
        self.gguf_type = QComboBox(self)
        self.gguf_type.setObjectName("ggufType")
        for name in GGUF_TYPES:
            self.gguf_type.addItem(
                {"f16": "f16 (16-bit, exact)", "q8_0": "q8_0 (8-bit, about half the size)"}[name],
                name,
            )
        self.gguf_type.currentIndexChanged.connect(self._kind_changed)
        form.addRow("GGUF type", self.gguf_type)
        self.folder = QLineEdit(self)
        self.folder.setObjectName("exportFolder")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.folder_row = QWidget(self)
        self.folder_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Folder", self.folder_row)
        self.repo = QLineEdit(self._hub_default, self)
        self.repo.setObjectName("hubRepo")
        self.repo.setPlaceholderText("owner/name")
        form.addRow("Repository", self.repo)
        self.public = QCheckBox("Public (repositories are private unless this is ticked)", self)
        self.adapter_only = QCheckBox("Adapter only (instead of the merged model)", self)
        form.addRow("", self.public)
        form.addRow("", self.adapter_only)
        layout.addLayout(form)

        self.progress = QProgressBar(self)
        self.progress.setObjectName("exportProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("Ready.", self)
        self.status.setObjectName("exportStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self.size_label = QLabel("", self)
        self.size_label.setObjectName("exportSize")
        layout.addWidget(self.size_label)
        self.details = QPlainTextEdit(self)
        self.details.setObjectName("exportDetails")
        self.details.setReadOnly(True)
        self.details.setMaximumBlockCount(500)
        self.details.setFixedHeight(110)
        layout.addWidget(self.details)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.start_button = QPushButton("Export", self)
        self.start_button.setObjectName("exportStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Close", self)
        self.cancel_button.setObjectName("exportCancel")
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.resize(620, 440)

    def _selected_kind(self) -> ExportKind:
        kind: ExportKind = self.kind.currentData()
        return kind

    def _kind_changed(self, *_: Any) -> None:
        kind = self._selected_kind()
        self.gguf_type.setEnabled(kind == "gguf")
        for widget in (self.folder_row, self.folder):
            widget.setEnabled(kind != "hub")
        for widget in (self.repo, self.public, self.adapter_only):
            widget.setEnabled(kind == "hub")
        if kind != "hub":
            name = "merged" if kind == "merged" else f"gguf-{self.gguf_type.currentData()}"
            self.folder.setText(str(self._out / "exports" / name))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    # -- running --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def request(self, force: bool = False) -> ExportRequest:
        kind = self._selected_kind()
        if kind == "hub":
            return ExportRequest(
                "hub",
                self.repo.text().strip(),
                public=self.public.isChecked(),
                adapter_only=self.adapter_only.isChecked(),
            )
        destination = self.folder.text().strip()
        return ExportRequest(kind, destination, gguf_type=self.gguf_type.currentData(), force=force)

    def start(self) -> None:
        """Start the export the form describes (asks first before writing into a used folder)."""
        if self.running:
            return
        request = self.request()
        if request.kind == "hub" and "/" not in request.destination:
            self._show_error("Give the repository as owner/name.")
            return
        if request.kind != "hub":
            if not request.destination:
                self._show_error("Choose a folder to export into.")
                return
            folder = Path(request.destination).expanduser()
            if destination_in_use(folder):
                if not self.confirm_overwrite(folder):
                    self.status.setText(f"Nothing was written: {folder} already holds files.")
                    return
                request = self.request(force=True)
        self.outcome, self.error = None, None
        self.details.clear()
        self._set_running(True)
        self.status.setText("Starting the trainer…")
        if request.kind == "hub" and self.token_source is not None:
            source = self.token_source
            self._off_thread.run(source, lambda future: self._launch(request, _token(future)))
        else:
            self._launch(request, None)

    def _launch(self, request: ExportRequest, token: str | None) -> None:
        self._generation += 1
        generation = self._generation
        self._request = request
        try:
            self.process = start_export(
                self.job,
                request,
                python=self.python,
                scratch=Path(self._scratch.name),
                hf_token=token,
                on_event=lambda event: self._bridge.post(self._on_event, generation, event),
            )
        except ExportRefused as refused:
            self._set_running(False)
            self._show_error(refused.message + (f"\n{refused.hint}" if refused.hint else ""))
        except TrainerProcessError as failed:
            self._set_running(False)
            self._show_error(str(failed))

    def cancel(self) -> None:
        process = self.process
        if process is not None and process.running:
            self.status.setText("Cancelling…")
            process.cancel()

    def _cancel_or_close(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.reject()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.kind.setEnabled(not running)
        self.cancel_button.setText("Cancel" if running else "Close")
        if running:
            self.progress.setRange(0, 0)  # busy until the first progress event
            self.size_label.setText("")

    def _show_error(self, message: str) -> None:
        self.error = message
        self.status.setText(f"Export failed: {message}")
        self.status.setStyleSheet("color: #b00020;")

    # -- events (GUI thread) --------------------------------------------------------------------

    def _on_event(self, generation: int, event: dict[str, Any]) -> None:
        if generation != self._generation:
            return
        kind = event.get("event")
        if kind == "stage":
            self.status.setStyleSheet("")
            self.status.setText(str(event.get("message") or ""))
            self.details.appendPlainText(str(event.get("message") or ""))
        elif kind == "progress":
            total = int(event.get("total") or 0)
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(int(event.get("done") or 0))
            if event.get("bytes") is not None:
                self.size_label.setText(f"{human_size(float(event['bytes']))} written")
        elif kind == "note":
            self.details.appendPlainText(str(event.get("message") or ""))
        elif kind == "done":
            self._done(event)
        elif kind == "error":
            message = str(event.get("message") or "the export failed")
            hint = str(event.get("hint") or "")
            self._show_error(message + (f"\nHint: {hint}" if hint else ""))
        elif kind == "cancelled":
            self.status.setText("Cancelled; nothing was written.")
        elif kind == "log":
            self.details.appendPlainText(str(event.get("line") or ""))
        elif kind == "exit":
            if self.process is not None and self.process.cancelled and self._request:
                remove_partials(self._request)  # in case it was killed before cleaning up
            self.process = None
            self._set_running(False)
            if self.outcome is None:
                self.progress.setRange(0, 1)
                self.progress.setValue(0)

    def _done(self, event: dict[str, Any]) -> None:
        self.outcome = event
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        size = human_size(float(event.get("bytes") or 0))
        self.size_label.setText(f"{size} in {len(event.get('files') or [])} files")
        if event.get("kind") == "hub":
            self.status.setText(f"Pushed {size} to {event.get('repo')}: {event.get('url')}")
        else:
            self.status.setText(f"Done: {size} written to {event.get('path')}")
        for item in event.get("files") or []:
            name = Path(str(item.get("name"))).name
            self.details.appendPlainText(f"{name}  {human_size(float(item.get('bytes') or 0))}")

    # -- closing --------------------------------------------------------------------------------

    def reject(self) -> None:
        self.cancel()
        self._off_thread.shutdown()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel()
        self._off_thread.shutdown()
        self._scratch.cleanup()
        super().closeEvent(event)


def _token(future: Future[Any]) -> str | None:
    try:
        value = future.result()
    except Exception:  # no keyring: a public push needs no token, the Hub says if it does
        return None
    return value if isinstance(value, str) and value else None
