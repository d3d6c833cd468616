"""The "Set up local training" dialog, driven for real offscreen: the runner and its
subprocesses are real, only the steps are quick ones (the slow test installs for real)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication
from scripted_plans import ScriptedPlan, scripted

from app.core.trainer_env import TorchChoice
from app.ui.trainer_env_dialog import TrainerEnvDialog

pytestmark = pytest.mark.gui


def wait_until(qtbot: Any, condition: Any, timeout_ms: int = 20_000) -> None:
    qtbot.waitUntil(condition, timeout=timeout_ms)


def make_dialog(qtbot: Any, plan: ScriptedPlan, recorded: list[str]) -> TrainerEnvDialog:
    def factory(*, torch: TorchChoice) -> ScriptedPlan:
        return ScriptedPlan(**{**plan.__dict__, "torch": torch})

    dialog = TrainerEnvDialog(plan_factory=factory, record=recorded.append)
    qtbot.addWidget(dialog)
    return dialog


def test_setting_up_shows_progress_and_the_log_and_records_the_environment(
    qtbot: Any, tmp_path: Path
) -> None:
    recorded: list[str] = []
    plan = scripted(tmp_path, "print('collecting torch')", "print('installed trainer')")
    dialog = make_dialog(qtbot, plan, recorded)
    assert "Environment:" in dialog.plan_text.text()
    # the torch choice is shown and can be changed; the plan follows it
    dialog.build.setCurrentIndex(0)
    assert dialog.torch_choice().build == "cuda" and "CUDA" in dialog.plan_text.text()
    dialog.build.setCurrentIndex(1)
    assert dialog.torch_choice().build == "cpu"
    dialog.index.setText("")
    assert dialog.torch_choice().index_url is None
    with qtbot.waitSignal(dialog.ready, timeout=30_000) as ready:
        dialog.start_button.click()
        assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    python = str(tmp_path / "env" / "bin" / "python")
    assert ready.args == [python] and recorded == [python]
    log = dialog.log.toPlainText()
    assert "collecting torch" in log and "installed trainer" in log
    assert dialog.progress.value() == dialog.progress.maximum() == 3
    assert dialog.status.text().startswith("Ready: local runs now use")
    assert dialog.start_button.text() == "Set up again" and dialog.close_button.isEnabled()


def test_cancel_stops_the_running_step_and_retry_starts_over(qtbot: Any, tmp_path: Path) -> None:
    recorded: list[str] = []
    slow = scripted(tmp_path, "import time; print('downloading', flush=True); time.sleep(60)")
    dialog = make_dialog(qtbot, slow, recorded)
    dialog.start_button.click()
    wait_until(qtbot, lambda: "downloading" in dialog.log.toPlainText())
    dialog.reject()  # closing while it runs cancels instead of leaving pip half done
    wait_until(qtbot, lambda: dialog.result_ is not None)
    assert dialog.result_ is not None and dialog.result_.status == "cancelled"
    assert "cancelled during 'step 1'" in dialog.status.text()
    assert dialog.start_button.text() == "Retry" and dialog.start_button.isEnabled()
    assert recorded == []
    # retry: the same button, a plan that now succeeds
    quick = scripted(tmp_path, "print('second try')")
    dialog._plan_factory = lambda *, torch: ScriptedPlan(**{**quick.__dict__, "torch": torch})
    with qtbot.waitSignal(dialog.ready, timeout=30_000):
        dialog.start_button.click()
    assert "second try" in dialog.log.toPlainText() and len(recorded) == 1


def test_a_failure_says_which_step_and_offers_retry(qtbot: Any, tmp_path: Path) -> None:
    recorded: list[str] = []
    failing = scripted(tmp_path, "import sys; print('no space left on device'); sys.exit(1)")
    dialog = make_dialog(qtbot, failing, recorded)
    dialog.start_button.click()
    wait_until(qtbot, lambda: dialog.result_ is not None)
    QCoreApplication.processEvents()
    assert "'step 1' failed (exit code 1)" in dialog.status.text()
    assert "no space left on device" in dialog.log.toPlainText()
    assert dialog.start_button.text() == "Retry" and recorded == []


def test_settings_offers_the_setup(qtbot: Any, tmp_path: Path) -> None:
    import keyring.backends.fail

    from app.core.credentials import CredentialStore
    from app.core.settings import Settings
    from app.ui.settings_dialog import SettingsDialog

    store = CredentialStore(keyring.backends.fail.Keyring())
    settings_dialog = SettingsDialog(Settings(trainer_python=""), store)
    qtbot.addWidget(settings_dialog)
    button = settings_dialog.findChild(type(settings_dialog.python_check), "trainerEnvSetUp")
    assert button is not None and button.text() == "Set up local training…"
    button.click()
    assert isinstance(settings_dialog.training_setup, TrainerEnvDialog)
    settings_dialog._training_env_ready(sys.executable)
    assert settings_dialog.python.text() == sys.executable
    settings_dialog.training_setup.close()


def test_the_first_start_offer_opens_the_dialog_and_hands_over_the_environment(
    qtbot: Any,
) -> None:
    from PySide6.QtWidgets import QMainWindow

    from app.ui.trainer_env_dialog import offer_training_setup

    window = QMainWindow()
    qtbot.addWidget(window)
    used: list[str] = []
    offer_training_setup(window, used.append)
    [dialog] = window.findChildren(TrainerEnvDialog)
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.status.text().startswith("No training environment was found")
    dialog.ready.emit("/envs/trainer/bin/python")
    assert used == ["/envs/trainer/bin/python"]
