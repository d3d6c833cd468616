"""PySide6 6.12.0 on Python 3.11 drops a reference to True/None on every Signal.emit() and the
process aborts after a few thousand emits (NOTES.md). The charts and the bridge emit far more than
that in a long run, so a version with the bug must fail here, in a subprocess of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

    class Emitter(QObject):
        fired = Signal(bool)
        nothing = Signal()

    app = QCoreApplication([])
    emitter = Emitter()
    seen = []
    emitter.fired.connect(seen.append)
    emitter.nothing.connect(lambda: None)
    for i in range(20_000):
        emitter.fired.emit(i % 2 == 0)
        emitter.nothing.emit()
    for _ in range(2_000):
        QTimer.singleShot(0, lambda: None)
    QTimer.singleShot(50, app.quit)
    app.exec()
    assert len(seen) == 20_000, len(seen)
    print("ok")
    """
)


def test_emitting_a_signal_twenty_thousand_times_does_not_crash() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
