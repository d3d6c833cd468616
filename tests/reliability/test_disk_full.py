"""Faults: the disk fills up while the trainer writes a checkpoint or its event log (issue 8).

The output folder is a size-limited tmpfs (we run as root here and in CI; the test fails rather
than skips in CI when it cannot mount one). Expected: a job_failed alert that says the disk is
full and which folder, a non-zero exit with one error line instead of tracebacks, and a resume
that skips the checkpoint the full disk cut short (naming it) and continues from the one before.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.core.launcher import create_job_for
from tests.reliability.conftest import AppStackFactory
from trainer.checkpoints import STATE_FILE, incomplete_reason, latest_complete_checkpoint

MountDisk = Callable[[str], Path]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[MountDisk]:
    """``small_disk("3m")``: a fresh tmpfs of that size; ``resize`` by mounting again."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / "disk"
        folder.mkdir(exist_ok=True)
        options = f"size={size}" + (",remount" if folder in mounted else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            why = f"cannot mount a {size} tmpfs: {done.stderr.strip() or done.returncode}"
            if os.environ.get("CI"):
                pytest.fail(f"{why} (CI runs as root and must run the disk-full tests)")
            pytest.skip(why)
        if folder not in mounted:
            mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _trainer_log(job_log: str | None) -> str:
    assert job_log is not None
    return Path(job_log).read_text(errors="replace")


# -- the rule itself ----------------------------------------------------------------------------


def _write_safetensors(path: Path, floats: int, *, cut: int = 0) -> None:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [floats], "data_offsets": [0, 4 * floats]}}
    ).encode()
    data = struct.pack("<Q", len(header)) + header + b"\0" * (4 * floats)
    path.write_bytes(data[: len(data) - cut])


def _checkpoint(folder: Path, step: int, *, state: bool = True, cut: int = 0) -> Path:
    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    _write_safetensors(ckpt / "model.safetensors", 64, cut=cut)
    if state:
        (ckpt / STATE_FILE).write_text(json.dumps({"global_step": step}))
    return ckpt


def test_latest_skips_cut_short_checkpoints_and_names_them(tmp_path: Path) -> None:
    good = _checkpoint(tmp_path, 4)
    truncated_weights = _checkpoint(tmp_path, 8, cut=100)
    no_state = _checkpoint(tmp_path, 12, state=False)
    half_state = _checkpoint(tmp_path, 16)
    (half_state / STATE_FILE).write_text('{"global_step": 16, "log_hi')
    no_weights = tmp_path / "checkpoint-20"
    no_weights.mkdir()
    (no_weights / STATE_FILE).write_text(json.dumps({"global_step": 20}))

    skipped: list[str] = []
    assert latest_complete_checkpoint(tmp_path, report=skipped.append) == good
    assert incomplete_reason(good) is None
    assert [s.split(":")[0] for s in skipped] == [
        f"skipping {p}" for p in (no_weights, half_state, no_state, truncated_weights)
    ]
    assert "no model or adapter weights" in skipped[0]
    assert "truncated" in skipped[1]
    assert f"no {STATE_FILE}" in skipped[2]
    assert "model.safetensors is cut short" in skipped[3]


def test_resume_latest_in_the_trainer_uses_the_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from trainer.config import parse_config
    from trainer.run import resolve_resume

    good = _checkpoint(tmp_path, 3)
    _checkpoint(tmp_path, 6, state=False)
    cfg = parse_config({"checkpoint": {"resume_from_checkpoint": "latest"}})
    with caplog.at_level("WARNING", logger="trainer.checkpoints"):
        assert resolve_resume(cfg, tmp_path) == str(good)
    assert f"skipping {tmp_path / 'checkpoint-6'}: not a complete checkpoint" in caplog.text


# -- a real run on a full disk ------------------------------------------------------------------


@pytest.mark.slow
def test_a_disk_full_during_a_checkpoint_fails_clearly_and_resume_skips_the_cut_one(
    app_stack: AppStackFactory, tiny_run, small_disk: MountDisk
) -> None:
    # a checkpoint of the tiny model is about 1.7 MB: the first fits in 3 MB, the second not
    out = small_disk("3m") / "out"
    cfg = tiny_run(name="disk-full", max_steps=24, save_steps=4, logging_steps=2, output_dir=out)

    async def scenario() -> None:
        async with app_stack() as stack:
            store, launcher = stack.store, stack.launcher
            job = create_job_for(store, cfg)
            await launcher.start(job, cfg)
            code = await asyncio.wait_for(launcher.wait(job.id), 240)
            failed = store.require_job(job.id)
            log_text = _trainer_log(failed.log_path)
            assert code == 1, log_text[-3000:]
            assert failed.status == "failed"
            [alert] = [a for a in store.alerts(job.id) if a["type"] == "job_failed"]
            assert alert["error_type"] == "disk_full"
            assert "no space left on device" in alert["error_message"]
            assert str(out) in alert["error_message"]
            assert "checkpoint-8, which is incomplete" in alert["error_message"]
            assert "Traceback" not in log_text  # one error line, not every layer's traceback
            assert f"error: the disk is full: no space left on device in {out}" in log_text
            assert incomplete_reason(out / "checkpoint-8") is not None
            assert incomplete_reason(out / "checkpoint-4") is None
            print(f"FIGURE disk full at checkpoint: alert {alert['error_message']!r}")

            small_disk("20m")  # the user made room
            await launcher.resume(job.id)
            assert await asyncio.wait_for(launcher.wait(job.id), 240) == 0
            done = store.require_job(job.id)
            log_text = _trainer_log(done.log_path)
            assert done.status == "completed", done.error
            assert f"skipping {out / 'checkpoint-8'}: not a complete checkpoint" in log_text
            starts = [a for a in store.alerts(job.id) if a["type"] == "job_started"]
            assert starts[-1].get("resumed_from_step") == 4

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_disk_full_while_writing_the_event_log_fails_clearly(
    app_stack: AppStackFactory, tiny_run, small_disk: MountDisk
) -> None:
    # no checkpoints; about 400 bytes a metric line: 64 KiB fills after about 150 steps
    out = small_disk("64k") / "out"
    cfg = tiny_run(
        name="log-full",
        max_steps=1000,
        logging_steps=1,
        output_dir=out,
        checkpoint={"save_strategy": "no"},
    )

    async def scenario() -> None:
        async with app_stack() as stack:
            store, launcher = stack.store, stack.launcher
            job = create_job_for(store, cfg)
            await launcher.start(job, cfg)
            code = await asyncio.wait_for(launcher.wait(job.id), 240)
            failed = store.require_job(job.id)
            log_text = _trainer_log(failed.log_path)
            assert code == 1, log_text[-3000:]
            [alert] = [a for a in store.alerts(job.id) if a["type"] == "job_failed"]
            assert alert["error_type"] == "disk_full", alert
            assert f"no space left on device in {out}" in alert["error_message"]
            assert "Traceback" not in log_text
            assert 0 < (failed.current_step or 0) < 1000
            print(
                f"FIGURE disk full in the event log at step {failed.current_step}: "
                f"alert {alert['error_message']!r}"
            )

    asyncio.run(scenario())
