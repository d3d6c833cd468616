"""The environment every trainer (local run, Settings check) starts from."""

from __future__ import annotations

from app.core.trainer_python import clean_environment


def test_an_exported_runpod_key_never_reaches_a_trainer() -> None:
    env = clean_environment(
        {"PATH": "/usr/bin", "RUNPOD_API_KEY": "rpa_users_own_key", "HF_HOME": "/hf"}
    )
    assert "RUNPOD_API_KEY" not in env
    assert env["PATH"] == "/usr/bin" and env["HF_HOME"] == "/hf"


def test_library_paths_of_a_frozen_app_are_replaced_by_the_users_own() -> None:
    env = clean_environment(
        {
            "LD_LIBRARY_PATH": "/opt/tunedeck/_internal",
            "LD_LIBRARY_PATH_ORIG": "/usr/local/cuda/lib64",
            "PYTHONHOME": "/opt/tunedeck",
            "PYTHONPATH": "/opt/tunedeck/base_library.zip",
            "JOB_TOKEN": "inherited",
        }
    )
    assert env["LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64"
    assert not {"PYTHONHOME", "PYTHONPATH", "JOB_TOKEN", "LD_LIBRARY_PATH_ORIG"} & env.keys()
