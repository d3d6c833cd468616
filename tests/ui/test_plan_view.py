"""The estimate in the New Run form: live, off the GUI thread, and a confirmation before
launching a run that does not fit."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLineEdit, QMessageBox

from app.ui.presets import PresetLibrary
from app.ui.run_form import LOCAL, RUNPOD, RunDialog

# Llama-2-7B's config.json: full fine-tuning needs far more than a 24 GB card
LLAMA_7B = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "torch_dtype": "bfloat16",
}


@pytest.fixture
def dialog(qtbot: Any, tmp_path: Path) -> RunDialog:
    widget = RunDialog(PresetLibrary(tmp_path / "presets"), targets={LOCAL: None, RUNPOD: None})
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _wait_plan(qtbot: Any, dialog: RunDialog, model: str) -> None:
    qtbot.waitUntil(
        lambda: dialog.plan_view.plan is not None and dialog.plan_view.plan.model == model,
        timeout=20_000,
    )


def test_typing_is_never_blocked_and_the_estimate_follows(qtbot: Any, dialog: RunDialog) -> None:
    view = dialog.plan_view
    gate = threading.Event()
    real = view._planner
    planned: list[str] = []

    def slow(cfg: Any, gpus: Any, target: Any) -> Any:
        gate.wait(10)  # a slow Hub request, say
        planned.append(cfg.name)
        return real(cfg, gpus, target)

    view._planner = slow
    dialog.form.set_value("model.name_or_path", "builtin:tiny-llama")
    qtbot.waitUntil(lambda: view._worker.busy, timeout=5000)  # a plan is in flight, blocked

    name = dialog.form.rows["name"].editor
    line = name if isinstance(name, QLineEdit) else name.findChild(QLineEdit)
    assert line is not None
    line.selectAll()
    started = time.monotonic()
    QTest.keyClicks(line, "typed-while-planning")
    typing_s = time.monotonic() - started
    assert line.text() == "typed-while-planning"
    assert dialog.form.config().name == "typed-while-planning"
    assert typing_s < 5  # keystrokes were handled although the planner is stuck

    gate.set()
    qtbot.waitUntil(lambda: view.plan is not None and planned[-1:] == [line.text()], timeout=20_000)
    # twenty keystrokes coalesced into at most a couple of plans, the last one for the final text
    assert len(planned) <= 3
    assert "Peak about" in view.label.text() or "Peak GPU memory" in view.label.text()

    dialog.form.set_value("training.max_length", "64")
    before = view.plan
    qtbot.waitUntil(lambda: view.plan is not before, timeout=20_000)
    assert view.plan is not None and view.plan.estimate.seq_len <= 64


def test_launch_asks_before_a_run_that_does_not_fit(
    qtbot: Any, dialog: RunDialog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "llama-7b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_7B))  # no weights: shapes from config
    dialog.set_target(RUNPOD)
    dialog.form.set_value("runpod.gpu_type", "NVIDIA GeForce RTX 4090")
    dialog.form.set_value("adapter.kind", "full")
    dialog.form.set_value("model.name_or_path", str(model))
    _wait_plan(qtbot, dialog, str(model))
    plan = dialog.plan_view.plan
    assert plan is not None and plan.target_fits is False
    assert "does NOT fit" in dialog.plan_view.label.text()
    assert "To make it fit" in dialog.plan_view.label.text()

    asked: list[str] = []
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]

    def question(parent: Any, title: str, text: str, *args: Any) -> Any:
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    launched: list[tuple[Any, str]] = []
    dialog.launch_requested.connect(lambda cfg, target: launched.append((cfg, target)))
    qtbot.mouseClick(dialog.launch_button, Qt.MouseButton.LeftButton)
    assert launched == [] and len(asked) == 1
    assert "NVIDIA GeForce RTX 4090 has 24 GB" in asked[0]
    assert "First thing to try: batch size 2 → 1" in asked[0]
    qtbot.mouseClick(dialog.launch_button, Qt.MouseButton.LeftButton)
    assert len(launched) == 1 and launched[0][1] == RUNPOD


def test_a_run_that_fits_launches_without_a_question(
    qtbot: Any, dialog: RunDialog, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialog.set_target(RUNPOD)
    dialog.form.set_value("model.name_or_path", "builtin:tiny-llama")
    _wait_plan(qtbot, dialog, "builtin:tiny-llama")
    assert dialog.plan_view.plan is not None and dialog.plan_view.plan.target_fits is True

    def never(*args: Any) -> Any:
        raise AssertionError("asked although the run fits")

    monkeypatch.setattr(QMessageBox, "question", never)
    launched: list[Any] = []
    dialog.launch_requested.connect(lambda cfg, target: launched.append(cfg))
    dialog.launch()
    assert len(launched) == 1


def test_a_model_it_cannot_read_is_said_not_hidden(qtbot: Any, dialog: RunDialog) -> None:
    dialog.form.set_value("model.name_or_path", "/no/such/model")
    qtbot.waitUntil(lambda: "No estimate" in dialog.plan_view.label.text(), timeout=10_000)
    assert "does not exist" in dialog.plan_view.label.text()


# --------------------------------------------------------------- after the run: the job view


def _oom_job() -> str:
    """A finished local job: its stored estimate, GPU memory figures, and a gpu_oom alert."""
    from app.core.plan_records import save_plan
    from app.core.store import Store
    from trainer.config import parse_config
    from trainer.planner import make_plan

    config = {
        "name": "too-big",
        "model": {"name_or_path": "builtin:tiny-llama"},
        "training": {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2},
    }
    store = Store()
    job = store.create_job(
        name="too-big", method="sft", model="builtin:tiny-llama", config_json=json.dumps(config)
    )
    store.set_status(job.id, "running")
    plan = make_plan(parse_config(config), local=[], count_dataset=False)
    save_plan(store, job.id, plan)
    store.add_metrics(
        job.id,
        [
            {"step": 1, "train_loss": 3.0, "gpu_memory_allocated_gb": 1.5},
            {
                "step": 2,
                "train_loss": 2.9,
                "gpu_memory_allocated_gb": 2.25,
                "gpu_memory_reserved_gb": 3.0,
            },
        ],
    )
    store.add_alert({"type": "gpu_oom", "job_id": job.id, "message": "CUDA out of memory"})
    store.set_status(job.id, "failed", "CUDA out of memory")
    store.close()
    return job.id


def test_the_job_view_shows_estimate_and_measured_peak_and_retries_with_less_memory(
    qtbot: Any, qloop: Any, tmp_path: Path
) -> None:
    from tests.ui.app_harness import make_app

    job_id = _oom_job()
    tunedeck = make_app(tmp_path)
    qtbot.addWidget(tunedeck.window)
    tunedeck.window.show()
    qloop.run_until_complete(tunedeck.start())
    try:
        window = tunedeck.window
        window.select_job(job_id)
        view = window.job_view
        line = view.memory.text()
        assert line.startswith("Peak GPU memory: estimated ") and "measured 2.25 GB" in line
        assert "(reserved 3.00 GB)" in line
        assert view.retry_button.isVisible()

        qtbot.mouseClick(view.retry_button, Qt.MouseButton.LeftButton)
        dialog = window.dialog
        assert dialog is not None and dialog.isVisible()
        assert "batch size 8 → 4 with gradient accumulation 2 → 4" in dialog.windowTitle()
        retried = dialog.form.config()
        assert retried.training.per_device_train_batch_size == 4
        assert retried.training.gradient_accumulation_steps == 4
        assert retried.name != "too-big"
        dialog.reject()
    finally:
        qloop.run_until_complete(tunedeck.stop())
