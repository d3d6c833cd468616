"""docs/screenshot-doctor.png: the Doctor view on the demo chat data (plus a repeated row and two
long ones, max_length 64), its three tabs side by side. Runs the real doctor subprocess.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshot_doctor.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_API", "pyside6")


def main() -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QColor, QPainter, QPixmap
    from PySide6.QtWidgets import QApplication

    from app.ui.doctor_view import DoctorView

    app = QApplication(sys.argv[:1])
    app.setStyleSheet((ROOT / "resources" / "style.qss").read_text())
    scratch = Path(tempfile.mkdtemp(prefix="tunedeck-doctor-shot-"))
    rows = (ROOT / "resources/datasets/demo-chat.jsonl").read_text().splitlines()
    story = "Tell me a long story about a dog, a cat and a bird who walk to the sea together. "
    extra = [
        rows[0],
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": story * 3},
                    {"role": "assistant", "content": "Once upon a time they walked."},
                ]
            }
        ),
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Count to twenty."},
                    {"role": "assistant", "content": " ".join(str(i) for i in range(1, 40))},
                ]
            }
        ),
    ]
    data = scratch / "chat.jsonl"
    data.write_text("\n".join([*extra[1:], *rows, extra[0]]) + "\n", encoding="utf-8")
    config = json.loads((ROOT / "resources/presets/demo-sft.json").read_text())
    config["dataset"]["path"] = str(data)
    config["training"]["max_length"] = 64

    view = DoctorView(cwd=ROOT)
    view.resize(640, 560)
    view.show()
    waiting = QEventLoop()
    view.finished.connect(lambda _result: waiting.quit())
    QTimer.singleShot(240_000, waiting.quit)
    view.start(config)
    waiting.exec()
    if view.result is None:
        raise SystemExit(f"the doctor gave no result: {view.status.text()}")
    shots = []
    for index in (0, 1, 2):
        view.tabs.setCurrentIndex(index)
        app.processEvents()
        shots.append(view.grab())
    width = sum(s.width() for s in shots) + 16 * (len(shots) - 1)
    canvas = QPixmap(width, max(s.height() for s in shots))
    canvas.fill(QColor("#ffffff"))
    painter = QPainter(canvas)
    x = 0
    for shot in shots:
        painter.drawPixmap(x, 0, shot)
        x += shot.width() + 16
    painter.end()
    out = ROOT / "docs" / "screenshot-doctor.png"
    canvas.save(str(out))
    print(out)


if __name__ == "__main__":
    main()
