"""`tunedeck export-model` as a user runs it: a subprocess, on a job whose run really trained
(the tiny model, a few LoRA steps), with the trainer's export verb doing the work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.jobs import Job
from app.core.model_export import ExportRequest, human_size, remove_partials
from app.core.store import Store
from tests.trainer.export_runs import train_lora
from tests.trainer.fake_hub import FakeHub

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The run's config file; its output folder is beside it in out/."""
    pytest.importorskip("torch")
    return train_lora(tmp_path_factory.mktemp("cli-export-run"), tiny_model_dir)


def add_job(config: Path, status: str = "completed") -> Job:
    data = json.loads(config.read_text(encoding="utf-8"))
    with Store() as store:
        job = store.create_job(
            name=data["name"],
            method="sft",
            model=data["model"]["name_or_path"],
            config_json=json.dumps(data),
            output_dir=str(config.parent / "out"),
        )
        if status != "queued":
            job = store.set_status(job.id, status)
    return job


def tunedeck(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # three export subprocesses (each imports torch): 10-15 s
def test_export_model_gguf_shows_progress_and_size_and_never_overwrites(
    trained: Path, tmp_path: Path
) -> None:
    job = add_job(trained)
    out = tmp_path / "gguf"
    python = ("--python", sys.executable)
    done = tunedeck("export-model", job.id, "--gguf", "f16", str(out), *python, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "merging the adapter" in done.stdout
    assert "21/21 tensors" in done.stdout
    gguf_file = out / "export-demo-f16.gguf"
    assert f"wrote {human_size(sum(p.stat().st_size for p in out.iterdir()))} to {out}" in (
        done.stdout
    )
    assert "export-demo-f16.gguf" in done.stdout and "Modelfile" in done.stdout
    assert "note: Modelfile: ChatML template translated for Ollama" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "export-demo-f16.gguf"]

    before = gguf_file.stat().st_mtime_ns
    again = tunedeck("export-model", job.id, "--gguf", "f16", str(out), *python, cwd=tmp_path)
    assert again.returncode == 2
    assert f"error: {out}: the folder is not empty" in again.stderr
    assert "--force" in again.stderr
    assert gguf_file.stat().st_mtime_ns == before

    merged = tmp_path / "merged"
    done = tunedeck("export-model", job.id[:6], "--merged", str(merged), *python, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (merged / "model.safetensors").is_file() and (merged / "chat_template.jinja").is_file()


def test_export_model_refuses_a_job_that_has_not_finished(trained: Path, tmp_path: Path) -> None:
    job = add_job(trained, status="running")
    done = tunedeck("export-model", job.id, "--merged", str(tmp_path / "m"), cwd=tmp_path)
    assert done.returncode == 2
    assert f"job {job.id} is running; only a finished job can be exported" in done.stderr
    assert not (tmp_path / "m").exists()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    yield server
    server.close()


def test_export_model_hub_pushes_privately_with_the_token(
    trained: Path, tmp_path: Path, hub: FakeHub
) -> None:
    job = add_job(trained)
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_from_env", "HF_HUB_OFFLINE": "0"}
    done = tunedeck(
        "export-model",
        job.id,
        "--hub",
        "bob/tuned",
        "--python",
        sys.executable,
        cwd=tmp_path,
        **env,
    )
    assert done.returncode == 0, done.stderr
    assert "pushed" in done.stdout and "bob/tuned" in done.stdout
    repo = hub.repos["bob/tuned"]
    assert repo.visibility == "private"
    assert {"README.md", "loss.png", "model.safetensors"} <= set(repo.files)
    assert set(hub.tokens) == {"hf_from_env"}


def test_remove_partials_removes_only_what_a_killed_export_left(tmp_path: Path) -> None:
    out = tmp_path / "gguf"
    out.mkdir()
    (out / "mine.txt").write_text("keep", encoding="utf-8")
    for name in ("gguf.partial-ab12", "gguf.partial-ab12-merged-x9", "gguf-old", "other"):
        (tmp_path / name).mkdir()
    removed = remove_partials(ExportRequest("gguf", str(out)))
    assert sorted(p.name for p in removed) == ["gguf.partial-ab12", "gguf.partial-ab12-merged-x9"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gguf", "gguf-old", "other"]
    assert (out / "mine.txt").read_text(encoding="utf-8") == "keep"
    assert remove_partials(ExportRequest("hub", "owner/name")) == []
