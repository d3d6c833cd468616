"""Time from process start to the first painted main window, next to a bare QMainWindow.

Both are started the same way (a fresh Python process, measured from just before it is spawned
until it writes a line from the first paint of its window), several times each, alternating, so
the two numbers see the same machine load. Target: Tunedeck at most 2x the bare window.

When a built folder exists (``make package``: dist/tunedeck), the frozen app is measured in the
same runs, against the same bare window.

Run: ``.venv/bin/python bench/startup.py`` (offscreen when there is no display).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 9
MARK = "first-paint"
FROZEN = ROOT / "dist" / "tunedeck" / ("tunedeck-gui.exe" if os.name == "nt" else "tunedeck-gui")

BARE = textwrap.dedent(
    f"""
    import sys
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                obj.removeEventFilter(self)
                QTimer.singleShot(0, lambda: (print("{MARK}", flush=True), app.quit()))
            return False

    app = QApplication(sys.argv)
    window = QMainWindow()
    window.setWindowTitle("bare")
    window.resize(1200, 800)
    watcher = FirstPaint()
    window.installEventFilter(watcher)
    window.show()
    app.exec()
    """
)


def _time_to_mark(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == MARK:
            elapsed = time.perf_counter() - start
            break
    else:
        _, err = proc.communicate(timeout=30)
        raise SystemExit(f"{args[1:3]} never painted a window:\n{err[-3000:]}")
    proc.communicate(timeout=30)
    return elapsed


def main() -> None:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory() as home:
        # the app's data, settings and cache in a scratch folder: no demo, no user history
        for name in ("DATA", "CONFIG", "CACHE"):
            env[f"TUNEDECK_{name}_DIR"] = str(Path(home) / name.lower())
        bare_cmd = [sys.executable, "-c", BARE]
        app_cmd = [sys.executable, "-m", "app.main", "--no-demo", "--exit-after-first-paint"]
        frozen_cmd = [str(FROZEN), "--no-demo", "--exit-after-first-paint"]
        has_frozen = FROZEN.is_file()
        _time_to_mark(bare_cmd, env)  # warm the disk cache for all
        _time_to_mark(app_cmd, env)
        if has_frozen:
            _time_to_mark(frozen_cmd, env)
        bare, app, frozen = [], [], []
        for _ in range(RUNS):
            bare.append(_time_to_mark(bare_cmd, env))
            app.append(_time_to_mark(app_cmd, env))
            if has_frozen:
                frozen.append(_time_to_mark(frozen_cmd, env))
    b, a = statistics.median(bare), statistics.median(app)
    print(f"process start to first painted main window (median of {RUNS}; fastest in brackets)")
    print(f"  bare QMainWindow  {b * 1000:7.0f} ms  ({min(bare) * 1000:.0f} ms)")
    print(f"  Tunedeck          {a * 1000:7.0f} ms  ({min(app) * 1000:.0f} ms)")
    verdict = "meets" if a / b <= 2 else "MISSES"
    print(f"  ratio             {a / b:7.2f}  ({verdict} the target of 2)")
    if frozen:
        f = statistics.median(frozen)
        verdict = "meets" if f / b <= 2 else "MISSES"
        print(f"  Tunedeck, frozen  {f * 1000:7.0f} ms  ({min(frozen) * 1000:.0f} ms)  {FROZEN}")
        print(f"  ratio, frozen     {f / b:7.2f}  ({verdict} the target of 2)")
    else:
        print(f"  (no frozen build at {FROZEN}: `make package` builds one)")


if __name__ == "__main__":
    main()
