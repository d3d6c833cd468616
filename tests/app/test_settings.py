"""Settings file: defaults, round trip, broken and old files, warnings, the training Python."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core import trainer_python
from app.core.settings import (
    SCHEMA_VERSION,
    LoadedSettings,
    Settings,
    load_settings,
    receiver_host_warning,
    save_settings,
    settings_dir,
)
from app.core.trainer_python import check_trainer_python, trainer_python_message
from trainer.events import ALERT_TYPES


def _settings_file() -> Path:
    return Path(os.environ["TUNEDECK_CONFIG_DIR"]) / "settings.json"


def _write(data: object) -> Path:
    path = _settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_first_start_has_sensible_defaults() -> None:
    loaded = load_settings()
    assert loaded.warnings == []
    s = loaded.settings
    assert (s.receiver_port, s.receiver_host, s.stall_minutes) == (8765, "127.0.0.1", 10)
    assert s.notify == dict.fromkeys(ALERT_TYPES, True)
    assert s.first_run_done is False
    assert s.receiver_host_warning() is None
    # this venv has the trainer packages, so training runs in the Python Tunedeck runs in
    assert s.trainer_python == sys.executable
    assert not _settings_file().exists()  # reading writes nothing


def test_round_trip_lands_in_the_config_folder_atomically() -> None:
    s = Settings(receiver_port=9001, stall_minutes=3, first_run_done=True)
    s.notify["job_started"] = False
    written = save_settings(s)

    assert written == _settings_file()
    assert settings_dir() == Path(os.environ["TUNEDECK_CONFIG_DIR"])
    assert sorted(p.name for p in written.parent.iterdir()) == ["settings.json"]  # no temp left
    assert json.loads(written.read_text())["schema_version"] == SCHEMA_VERSION

    again = load_settings()
    assert again.warnings == []
    assert again.settings.receiver_port == 9001
    assert again.settings.stall_minutes == 3
    assert again.settings.first_run_done is True
    assert again.settings.notifies("job_started") is False
    assert again.settings.notifies("job_completed") is True


def test_unreadable_file_is_kept_aside_and_defaults_used() -> None:
    path = _settings_file()
    path.parent.mkdir(parents=True)
    path.write_text('{"receiver_port": 9001,')  # cut off mid-write by some other tool

    loaded = load_settings()

    assert loaded.settings.receiver_port == 8765
    assert len(loaded.warnings) == 1
    assert "could not be read" in loaded.warnings[0]
    assert "settings.json.bak" in loaded.warnings[0]
    assert path.with_name("settings.json.bak").read_text() == '{"receiver_port": 9001,'
    assert not path.exists()


def test_not_an_object_is_kept_aside_too() -> None:
    _write([1, 2, 3])
    loaded = load_settings()
    assert "expected a JSON object" in loaded.warnings[0]
    assert _settings_file().with_name("settings.json.bak").exists()


def test_one_bad_field_falls_back_alone_and_the_file_is_repaired() -> None:
    original = {"schema_version": 1, "receiver_port": 80, "stall_minutes": 4}
    path = _write(original)

    loaded = load_settings()

    assert loaded.settings.receiver_port == 8765  # 80 is below 1024
    assert loaded.settings.stall_minutes == 4  # the good field survives
    assert len(loaded.warnings) == 1
    assert "receiver_port = 80 is not allowed" in loaded.warnings[0]
    assert json.loads(path.with_name("settings.json.bak").read_text()) == original
    # repaired on disk: the next start says nothing
    assert load_settings().warnings == []
    assert load_settings().settings.stall_minutes == 4


def test_file_without_version_upgrades_and_new_alert_types_default_on() -> None:
    # hand-written, before a version was recorded, and before the health alerts existed
    _write({"receiver_port": 9100, "notify": {"job_started": False, "job_completed": True}})
    loaded = load_settings()
    assert loaded.warnings == []
    s = loaded.settings
    assert s.schema_version == SCHEMA_VERSION
    assert s.receiver_port == 9100
    assert s.notifies("job_started") is False
    assert s.notifies("stalled") is True
    assert set(s.notify) >= set(ALERT_TYPES)


def test_newer_file_is_read_and_its_unknown_fields_kept() -> None:
    _write({"schema_version": SCHEMA_VERSION + 1, "receiver_port": 9200, "theme": "dark"})
    loaded = load_settings()
    assert "newer Tunedeck" in loaded.warnings[0]
    assert loaded.settings.receiver_port == 9200

    loaded.settings.stall_minutes = 20
    save_settings(loaded.settings)
    on_disk = json.loads(_settings_file().read_text())
    assert on_disk["theme"] == "dark"
    assert on_disk["schema_version"] == SCHEMA_VERSION + 1
    assert on_disk["stall_minutes"] == 20


def test_a_secret_in_the_file_is_ignored_and_dropped_on_save() -> None:
    _write({"schema_version": 1, "hf_token": "hf_leakedleakedleaked"})
    loaded = load_settings()
    assert "belong in the OS keyring" in loaded.warnings[0]
    assert "hf_leakedleakedleaked" not in " ".join(loaded.warnings)
    save_settings(loaded.settings)
    assert "hf_leakedleakedleaked" not in _settings_file().read_text()
    assert not _settings_file().with_name("settings.json.bak").exists()


def test_assignment_is_validated() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.receiver_port = 70000
    with pytest.raises(ValidationError):
        s.receiver_host = "not an address"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_warning(host: str) -> None:
    assert receiver_host_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "my-desktop.lan"])
def test_other_bind_addresses_warn(host: str) -> None:
    warning = receiver_host_warning(host)
    assert warning is not None
    assert host in warning
    assert "other machines can reach it" in warning


# ---- the training Python -------------------------------------------------------------------


def test_without_trainer_packages_the_default_is_empty_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = trainer_python.importlib.util.find_spec
    monkeypatch.setattr(
        trainer_python.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "trl" else real(name, *a),
    )
    assert Settings().trainer_python == ""
    message = trainer_python_message("")
    assert message is not None
    assert "lacks trl" in message
    assert "Settings → Training environment" in message
    assert trainer_python_message(sys.executable) is None


def test_checking_this_python_finds_every_package() -> None:
    result = check_trainer_python(sys.executable)
    assert result.ok, result.message
    assert "ready to train" in result.message
    assert result.packages["trl"]


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_checking_a_python_without_the_packages_names_them(tmp_path: Path) -> None:
    # the same interpreter with site-packages switched off: a real Python lacking every package
    bare = _script(tmp_path, "python-bare", f'exec "{sys.executable}" -S "$@"')
    result = check_trainer_python(str(bare))
    assert not result.ok
    assert result.missing == ["torch", "transformers", "trl", "peft", "datasets"]
    assert "lacks torch, transformers, trl, peft, datasets" in result.message


def test_checking_something_that_is_not_python(tmp_path: Path) -> None:
    not_python = _script(tmp_path, "fake", "echo hello; exit 3")
    assert "is not a working Python" in check_trainer_python(str(not_python)).message
    assert "does not exist" in check_trainer_python(str(tmp_path / "nope")).message
    slow = _script(tmp_path, "slow", "exec sleep 5")
    assert "did not answer within 0.3 s" in check_trainer_python(str(slow), timeout_s=0.3).message


def test_loading_settings_imports_no_ml_package() -> None:
    code = (
        "import sys; from app.core.settings import load_settings; load_settings(); "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_loaded_settings_carry_their_path() -> None:
    loaded = load_settings()
    assert isinstance(loaded, LoadedSettings)
    assert loaded.path == _settings_file()
