"""docs/screenshot-try.png: the job view's Try tab on a freshly trained tiny run, the tuned model
beside its base model answering the same questions (real chat processes, greedy decoding).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot_try.py

Trains the chat tests' run (tests/trainer/chat_runs.py: 100 LoRA steps on the tiny model, under a
minute here) in a scratch folder first.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="tunedeck-try-shot-"))
for _name in ("DATA", "CONFIG", "CACHE"):
    os.environ[f"TUNEDECK_{_name}_DIR"] = str(SCRATCH / _name.lower())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("TUNEDECK_TORCH_THREADS", "1")
QUESTIONS = ("What is the capital of France?", "Name a color.", "Count to three.")


def _wait(app: object, done: object, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()  # type: ignore[attr-defined]
        if done():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    from PySide6.QtWidgets import QApplication

    from app.core.chat_session import ChatCatalog
    from app.core.store import Store
    from app.ui.job_view import JobView
    from tests.trainer.chat_runs import store_job, trained_chat_run
    from trainer.tiny_model import build_tiny_llama

    run = trained_chat_run(SCRATCH, build_tiny_llama(SCRATCH / "tiny-llama"))
    app = QApplication(sys.argv[:1])
    app.setStyleSheet((ROOT / "resources" / "style.qss").read_text())
    store = Store()
    job = store_job(store, run)
    catalog = ChatCatalog(store, SCRATCH)
    view = JobView()
    view.try_tab.attach(catalog.targets, others_of=catalog.other_targets)
    view.resize(1180, 720)
    view.show()
    view.show_job(job)
    view.tabs.setCurrentWidget(view.try_tab)
    tab = view.try_tab
    tab.temperature.setValue(0)
    tab.max_new.setValue(24)
    for question in QUESTIONS:
        tab.input.setPlainText(question)
        tab.send()
        _wait(app, lambda: not tab.generating, f"the answers to {question!r}")
    tab.input.setPlainText("Say hello.")
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    path = ROOT / "docs" / "screenshot-try.png"
    if not view.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT)}")
    tab.release()
    store.close()


if __name__ == "__main__":
    main()
