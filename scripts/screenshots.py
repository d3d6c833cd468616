"""Screenshots for the README: the main window during a run, and the New Run form.

Run under a virtual display (real fonts and the xcb platform, unlike offscreen):

    bash scripts/ensure-system-deps.sh
    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshots.py

Writes docs/screenshot-main.png and docs/screenshot-new-run.png. Everything it creates (the
store, the runs' outputs) lives in a temporary folder; it trains the tiny model for real, twice
(about a minute on two cores).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

SCRATCH = Path(tempfile.mkdtemp(prefix="tunedeck-shots-"))
for _name in ("DATA", "CONFIG", "CACHE"):
    os.environ[f"TUNEDECK_{_name}_DIR"] = str(SCRATCH / _name.lower())
os.environ.setdefault("TUNEDECK_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_API", "pyside6")


async def until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def main() -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Tunedeck")
    app.setStyleSheet((ROOT / "resources" / "style.qss").read_text())
    import qasync

    from app.core.notifications import RecordingNotifier
    from app.core.settings import Settings
    from app.main import DEMO_PRESET, Tunedeck
    from app.ui.presets import read_config_file
    from tests.ui.app_harness import MemoryCredentials, free_port
    from trainer.config import parse_config

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    tunedeck = Tunedeck(
        settings=Settings(
            receiver_port=free_port(), trainer_python=sys.executable, first_run_done=True
        ),
        credentials=MemoryCredentials(),
        notifier=RecordingNotifier(),
        base_dir=SCRATCH,
    )
    window = tunedeck.window
    window.resize(1280, 800)
    window.show()

    def shoot(widget, name: str) -> None:  # type: ignore[no-untyped-def]
        # no processEvents() here: a nested Qt loop inside a coroutine re-enters asyncio
        path = DOCS / name
        if not widget.grab().save(str(path)):
            raise SystemExit(f"could not write {path}")
        print(f"wrote {path.relative_to(ROOT)}")

    async def scenario() -> None:
        await tunedeck.start()
        demo = read_config_file(DEMO_PRESET)
        # an earlier, shorter run in the history, and a DPO run that failed fast
        earlier = parse_config(
            {**demo, "name": "warm-up", "training": {**demo["training"], "max_steps": 60}}
        )
        first = await window.launch(earlier, "local")
        await until(lambda: tunedeck.store.require_job(first).is_final, 300, "the warm-up run")
        broken = parse_config(
            {
                **demo,
                "name": "dpo-wrong-data",
                "method": "dpo",
                "adapter": {"kind": "lora"},
            }
        )
        second = await window.launch(broken, "local")
        await until(lambda: tunedeck.store.require_job(second).is_final, 300, "the DPO run")

        job_id = await window.launch(parse_config(demo), "local")
        window.select_job(job_id)
        window.job_view.tabs.setCurrentIndex(0)
        window.table.selectRow(0)
        await until(lambda: tunedeck.store.metric_count(job_id) >= 70, 300, "70 points")
        # overlay the warm-up run, as a user comparing two runs would
        window.table.selectAll()
        window.table.selectionModel().setCurrentIndex(
            window.table.model().index(0, 0), window.table.selectionModel().SelectionFlag.NoUpdate
        )
        window.job_view.charts.smoothing.setValue(30)
        await asyncio.sleep(0.5)
        shoot(window, "screenshot-main.png")

        window.new_run_action.trigger()
        dialog = window.dialog
        dialog.resize(820, 800)
        dialog.apply_preset(dialog.presets.find("dpo", builtin=True))
        dialog.form.set_value("model.name_or_path", "builtin:tiny-llama")
        dialog.form.set_value("training.learning_rate", "-5e-5")  # shows an inline error
        dialog.show()
        picker = dialog.form.editor("dataset.path")
        await until(lambda: picker.report is not None and not picker.busy, 30, "the dataset")
        await asyncio.sleep(0.3)
        shoot(dialog, "screenshot-new-run.png")
        dialog.reject()
        await tunedeck.launcher.cancel(job_id, 30)
        await tunedeck.stop()

    with loop:
        loop.run_until_complete(scenario())


if __name__ == "__main__":
    main()
