"""The window paints before the app's heavy modules are imported (bench/startup.py times it;
this holds the reason it is fast, so that a new import on the way to the first paint fails here
instead of slowing every start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# what the first paint must not wait for: each took tens of milliseconds or more to import
LATER = (
    "pydantic",
    "numpy",
    "pyqtgraph",
    "aiohttp",
    "httpx",
    "qasync",
    "keyring",
    "trainer.config",
    "trainer.events",
    "trainer.data",
    "trainer.planner",
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from PySide6.QtWidgets import QApplication
    from app.main import Tunedeck, show_and_paint

    app = QApplication(sys.argv[:1])
    tunedeck = Tunedeck()
    painted = show_and_paint(tunedeck.window, app)
    print(json.dumps({"painted": painted, "modules": sorted(sys.modules)}))
    """
)


def test_the_window_paints_before_the_heavy_modules_load(tmp_path: Path, repo_root: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for name in ("DATA", "CONFIG", "CACHE"):
        env[f"TUNEDECK_{name}_DIR"] = str(tmp_path / name.lower())
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["painted"]
    early = [m for m in report["modules"] if m in LATER or m.split(".")[0] in LATER]
    assert early == []
