"""Screenshot of the Export dialog for the README: a GGUF (q8_0) export of a real tiny LoRA
run, taken when it has finished (progress full, size and files shown).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot_export.py

Writes docs/screenshot-export.png. Everything else lives in a temporary folder (about a minute
on two cores: a few training steps, then the export subprocess).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="tunedeck-export-shot-"))
for _name in ("DATA", "CONFIG", "CACHE"):
    os.environ[f"TUNEDECK_{_name}_DIR"] = str(SCRATCH / _name.lower())
os.environ.setdefault("TUNEDECK_TORCH_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_API", "pyside6")


def main() -> None:
    from PySide6.QtWidgets import QApplication

    from app.core.jobs import Job
    from app.ui.export_dialog import ExportDialog
    from tests.trainer.export_runs import train_lora
    from trainer.tiny_model import build_tiny_llama

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Tunedeck")
    app.setStyleSheet((ROOT / "resources" / "style.qss").read_text())
    config = train_lora(SCRATCH / "run", build_tiny_llama(SCRATCH / "tiny-llama"))
    job = Job(
        id="a1b2c3d4",
        name="export-demo",
        method="sft",
        model="builtin:tiny-llama",
        target="local",
        status="completed",
        config_json=config.read_text(encoding="utf-8"),
        created_at=time.time(),
        output_dir=str(config.parent / "out"),
    )
    dialog = ExportDialog(job, python=sys.executable)
    dialog.kind.setCurrentIndex(dialog.kind.findData("gguf"))
    dialog.gguf_type.setCurrentIndex(dialog.gguf_type.findData("q8_0"))
    dialog.folder.setText(str(SCRATCH / "exports" / "export-demo-gguf"))
    dialog.show()
    dialog.start()
    deadline = time.monotonic() + 600
    while dialog.outcome is None or dialog.running:
        if dialog.error or time.monotonic() > deadline:
            raise SystemExit(f"export did not finish: {dialog.error or 'timed out'}")
        app.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    path = ROOT / "docs" / "screenshot-export.png"
    if not dialog.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
