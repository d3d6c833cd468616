"""The Doctor view beside the dataset preview: what the model will actually learn from the rows.

It runs ``python -m trainer doctor --json`` in the trainer's environment through
app.core.trainer_subprocess (the GUI never imports the training stack; a crash there is a message
here) and shows the rendered samples coloured trained / masked with the truncation cut, the
token-length histogram against max_length, and the findings with their counts and example lines.
A progress bar follows large files; Cancel stops the process group.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]  # no stubs upstream
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.launcher import LaunchError
from app.core.trainer_python import launch_python
from app.core.trainer_subprocess import TrainerProcess, TrainerProcessError
from app.ui.bridge import Bridge

TRAINED_BG = "#c8ecc8"
MASKED_FG = "#7a7a7a"
CUT_BG = "#f4cccc"
SEVERITY_MARK = {"error": "✖ error", "warning": "▲ warning", "info": "● info"}


def samples_html(samples: list[dict[str, Any]]) -> str:
    """The rendered samples: trained text on green, masked text grey, cut text struck out on
    red after a ✂ mark."""
    parts = [
        f"<p><span style='background:{TRAINED_BG}'>trained</span> · "
        f"<span style='color:{MASKED_FG}'>masked</span> · "
        f"<span style='background:{CUT_BG}'><s>cut by max_length</s></span></p>"
    ]
    for s in samples:
        title = f"line {s['line']}" + (f" · {s['part']}" if s.get("part") else "")
        title += f" · {s['tokens']} tokens, {s['trained_tokens']} trained"
        if s.get("cut_at") is not None:
            title += f", cut at {s['cut_at']}"
        if s.get("dropped"):
            title += " · dropped (no trained token left)"
        body = []
        marked_cut = False
        for seg in s["segments"]:
            text = html.escape(seg["text"])
            if seg["cut"]:
                if not marked_cut:
                    body.append("<b style='color:#b00'>✂</b>")
                    marked_cut = True
                body.append(f"<span style='background:{CUT_BG}'><s>{text}</s></span>")
            elif seg["trained"]:
                body.append(f"<span style='background:{TRAINED_BG}'>{text}</span>")
            else:
                body.append(f"<span style='color:{MASKED_FG}'>{text}</span>")
        parts.append(f"<h4>{html.escape(title)}</h4><pre>{''.join(body)}</pre>")
    return "".join(parts)


class DoctorView(QWidget):
    """``start(config)`` examines the config's dataset; ``result`` holds the last answer."""

    finished = Signal(object)  # the result event, or None after an error or a cancel

    def __init__(
        self, parent: QWidget | None = None, *, python: str | None = None, cwd: Path | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("doctorView")
        self.python = python  # None: launch_python decides at each start (the saved settings)
        self.cwd = cwd
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._process: TrainerProcess | None = None
        self._generation = 0
        self._bridge = Bridge(self)
        self._tmp = tempfile.TemporaryDirectory(prefix="tunedeck-doctor-")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.status = QLabel("", self)
        self.status.setObjectName("doctorStatus")
        self.status.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("doctorProgress")
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("doctorCancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_button)
        layout.addLayout(bar)

        self.tabs = QTabWidget(self)
        self.samples = QTextBrowser(self)
        self.samples.setObjectName("doctorSamples")
        self.plot = pg.PlotWidget(self)
        self.plot.setObjectName("doctorHistogram")
        self.plot.setBackground("w")
        self.plot.setLabel("bottom", "tokens per sequence")
        self.plot.setLabel("left", "sequences")
        self.bars: pg.BarGraphItem | None = None
        self.max_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen("#c00", width=2), label="max_length", labelOpts={"color": "#c00"}
        )
        self.plot.addItem(self.max_line)
        self.findings = QTreeWidget(self)
        self.findings.setObjectName("doctorFindings")
        self.findings.setHeaderLabels(["Severity", "Rows", "Finding", "Example lines"])
        self.findings.setColumnWidth(0, 110)
        self.findings.setColumnWidth(1, 60)
        self.findings.setColumnWidth(2, 430)
        self.tabs.addTab(self.findings, "Findings")
        self.tabs.addTab(self.samples, "Samples")
        self.tabs.addTab(self.plot, "Lengths")
        layout.addWidget(self.tabs, 1)
        self.destroyed.connect(self._tmp.cleanup)

    # -- running ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self, config: Mapping[str, Any]) -> None:
        """Examine ``config``'s dataset (a run config as a dict); an earlier run is stopped."""
        self.cancel()
        try:
            python = launch_python(self.python)
        except LaunchError as err:  # a frozen app without a training environment
            self.result = None
            self._fail(f"{err}.\nHint: {err.hint}")
            return
        self._generation += 1
        generation = self._generation
        path = Path(self._tmp.name) / f"doctor-{generation}.json"
        path.write_text(json.dumps(dict(config)), encoding="utf-8")
        self.result, self.error = None, None
        self.status.setText("Loading the tokenizer and reading the rows…")
        self.progress.setRange(0, 0)  # busy until the first progress event
        self.progress.show()
        self.cancel_button.show()
        process = TrainerProcess(
            ["doctor", "--config", str(path), "--json"],
            python=python,
            cwd=self.cwd,
            on_event=lambda event: self._bridge.post(self._on_event, generation, event),
        )
        try:
            process.start()
        except TrainerProcessError as err:
            self._fail(str(err))
            return
        self._process = process

    def cancel(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.running:
            self._generation += 1  # its last events are no longer ours
            process.cancel()
            self._stopped("Cancelled.")

    def shutdown(self) -> None:
        self.cancel()

    # -- events (GUI thread) ----------------------------------------------------------------------

    def _on_event(self, generation: int, event: dict[str, Any]) -> None:
        if generation != self._generation:
            return
        kind = event.get("event")
        if kind == "progress":
            total = int(event.get("total") or 0)
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(int(event.get("done") or 0))
            self.status.setText(f"Tokenising {event.get('done', 0):,} of {total:,} examples…")
        elif kind == "result":
            self.show_result(event)
        elif kind == "error":
            message = str(event.get("message") or "the doctor failed")
            hint = str(event.get("hint") or "")
            self._fail(message + (f"\nHint: {hint}" if hint else ""))
        elif kind == "exit":
            self._process = None
            if self.result is None and self.error is None:
                self._fail(f"the doctor ended (exit code {event.get('code')}) without a result")

    def _stopped(self, text: str) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.status.setText(text)

    def _fail(self, message: str) -> None:
        self.error = message
        self._stopped(message)
        self.finished.emit(None)

    # -- showing ----------------------------------------------------------------------------------

    def show_result(self, result: dict[str, Any]) -> None:
        self.result = result
        self._stopped(
            f"{result['rows']:,} rows → {result['examples']:,} examples for {result['method']}"
            f" · {result['truncated_share']:.1%} of sequences cut at max_length "
            f"{result['max_length']} · {result['dropped_share']:.1%} dropped"
        )
        self.samples.setHtml(samples_html(result.get("samples", [])))
        self._draw_histogram(result["histogram"])
        self._fill_findings(result.get("findings", []))
        self.finished.emit(result)

    def _draw_histogram(self, hist: dict[str, Any]) -> None:
        edges, counts = hist["edges"], hist["counts"]
        if self.bars is not None:
            self.plot.removeItem(self.bars)
        self.bars = pg.BarGraphItem(
            x0=edges[:-1], x1=edges[1:], height=counts, brush="#5b8def", pen="#3b6dcf"
        )
        self.plot.addItem(self.bars)
        self.max_line.setPos(hist["max_length"])

    def _fill_findings(self, findings: list[dict[str, Any]]) -> None:
        self.findings.clear()
        if not findings:
            QTreeWidgetItem(self.findings, ["✔ ok", "", "Nothing looks wrong.", ""])
            return
        for f in findings:
            lines = ", ".join(str(n) for n in f.get("lines", []))
            item = QTreeWidgetItem(
                self.findings,
                [
                    SEVERITY_MARK.get(f["severity"], f["severity"]),
                    str(f["count"]),
                    f["message"],
                    lines,
                ],
            )
            item.setToolTip(2, f["hint"])
            QTreeWidgetItem(item, ["", "", f"Hint: {f['hint']}", ""])
            item.setExpanded(True)
        self.tabs.setCurrentWidget(self.findings)
