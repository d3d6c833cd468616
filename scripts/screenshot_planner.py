"""The planner's screenshot for the README: the New Run form's estimate for a run that does not
fit its GPU (full fine-tuning of a 7B model on a 24 GB card), with what would make it fit.

    xvfb-run -a -s "-screen 0 1280x1000x24" .venv/bin/python scripts/screenshot_planner.py

Writes docs/screenshot-planner.png. The model is a folder holding only Qwen2.5-7B-Instruct's
config.json (the planner computes its shapes from it; no weights are needed or read).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="tunedeck-planner-shot-"))
for _name in ("DATA", "CONFIG", "CACHE"):
    os.environ[f"TUNEDECK_{_name}_DIR"] = str(SCRATCH / _name.lower())
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QWEN_7B = {
    "model_type": "qwen2",
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def _dataset() -> Path:
    """20,000 chat rows of a few hundred words: enough for hours on a GPU."""
    path = SCRATCH / "support-chats.jsonl"
    answer = "Thank you for asking. " + "Here is what to check, step by step. " * 40
    rows = (
        {
            "messages": [
                {"role": "user", "content": f"Question {i}: my order has not arrived yet."},
                {"role": "assistant", "content": answer},
            ]
        }
        for i in range(20_000)
    )
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def main() -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setStyleSheet((ROOT / "resources" / "style.qss").read_text())
    from app.ui.presets import PresetLibrary
    from app.ui.run_form import LOCAL, RUNPOD, RunDialog

    model = SCRATCH / "Qwen2.5-7B-Instruct"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(QWEN_7B))
    dialog = RunDialog(PresetLibrary(SCRATCH / "presets"), targets={LOCAL: None, RUNPOD: None})
    dialog.resize(860, 980)
    dialog.apply_preset(dialog.presets.find("sft", builtin=True))
    dialog.set_target(RUNPOD)
    dialog.form.set_value("runpod.gpu_type", "NVIDIA GeForce RTX 4090")
    dialog.form.set_value("name", "qwen-7b-full")
    dialog.form.set_value("adapter.kind", "full")
    dialog.form.set_value("training.per_device_train_batch_size", "4")
    dialog.form.set_value("dataset.path", str(_dataset()))
    dialog.form.set_value("model.name_or_path", str(model))
    dialog.show()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        app.processEvents()
        plan = dialog.plan_view.plan
        if plan is not None and plan.model == str(model):
            break
        time.sleep(0.05)
    else:
        raise SystemExit("timed out waiting for the estimate")
    for _ in range(10):
        app.processEvents()
        time.sleep(0.05)
    path = ROOT / "docs" / "screenshot-planner.png"
    if not dialog.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT)}")
    dialog.plan_view.shutdown()


if __name__ == "__main__":
    main()
