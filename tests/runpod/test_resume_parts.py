"""The parts of a cloud resume that need no pod: the checkpoint archive and the agent that unpacks
it (a real agent process on 127.0.0.1), the ledger of a job on its second pod, the event log of
the first pod kept aside."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from app.core.launcher import LaunchError
from app.core.runpod.agent_client import AgentClient
from app.core.runpod.cost import EARLIER, PhaseLedger, format_meter
from app.core.runpod.pod_agent import UPLOAD_NAME
from app.core.runpod.resume import (
    CHECKPOINT_UPLOAD,
    checkpoint_to_resume,
    keep_event_log,
    pack_checkpoint,
)
from tests.runpod.agent_fixtures import AgentProcess, running_agent, tiny_run_config
from trainer.checkpoints import incomplete_reason


def _complete_checkpoint(folder: Path, step: int) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (path / "adapter_model.bin").write_bytes(b"weights")
    (path / "sub").mkdir()
    (path / "sub" / "rng_state.pth").write_bytes(b"rng")
    return path


def test_the_newest_complete_checkpoint_is_packed_to_unpack_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _complete_checkpoint(out, 4)
    (out / "checkpoint-6").mkdir()  # newer, cut short: skipped
    found = checkpoint_to_resume("job1", out)
    assert found.name == "checkpoint-4"
    archive = pack_checkpoint(found, tmp_path / "job" / CHECKPOINT_UPLOAD)
    with tarfile.open(archive, "r:gz") as tar:
        names = sorted(tar.getnames())
    assert names == [
        "checkpoint-4",
        "checkpoint-4/adapter_model.bin",
        "checkpoint-4/sub",
        "checkpoint-4/sub/rng_state.pth",
        "checkpoint-4/trainer_state.json",
    ]
    assert not archive.with_name(archive.name + ".part").exists()


def test_no_complete_checkpoint_says_so_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "checkpoint-2").mkdir()
    with pytest.raises(LaunchError) as err:
        checkpoint_to_resume("job1", tmp_path)
    assert "job job1 has no complete checkpoint to continue from" in str(err.value)
    assert "checkpoint-2" in str(err.value) and "trainer_state.json" in str(err.value)
    assert "cancelled" in err.value.hint and "duplicate" in err.value.hint
    with pytest.raises(LaunchError):
        checkpoint_to_resume("job1", tmp_path / "never-made")


def test_the_first_pods_event_log_is_kept_aside(tmp_path: Path) -> None:
    assert keep_event_log(tmp_path, "pod1") is None
    (tmp_path / "events.jsonl").write_text("first\n")
    assert keep_event_log(tmp_path, "pod1") == tmp_path / "events.pod1.jsonl"
    (tmp_path / "events.jsonl").write_text("again\n")
    again = keep_event_log(tmp_path, "pod1")
    assert again == tmp_path / "events.pod1.2.jsonl" and again.read_text() == "again\n"
    assert (tmp_path / "events.pod1.jsonl").read_text() == "first\n"
    assert not (tmp_path / "events.jsonl").exists()


def test_a_second_pod_keeps_the_first_pods_money_and_has_its_own_budget() -> None:
    first = PhaseLedger("provisioning", 0.0, cost_per_hour=3.6)  # $0.001 a second
    first.enter("training", 100.0)
    first.enter("terminated", 1000.0)
    # counted to when the first pod ended, not to when the resume came (days later, say)
    second = first.continued(now=90_000.0, ended_at=1000.0)
    assert second.phase == "provisioning" and second.cost_per_hour is None
    assert second.done == {EARLIER: {"seconds": 1000.0, "dollars": pytest.approx(1.0)}}
    second.cost_per_hour = 3.6
    assert second.pod_dollars(90_500.0) == pytest.approx(0.5)
    assert second.dollars(90_500.0) == pytest.approx(1.5)
    line = format_meter(second, 90_500.0, budget=2.0)
    assert line == "provisioning the pod · $0.50 of $2.00 this pod · $1.50 in all · $3.60/h"
    # stored and restored (a restarted app) it is the same
    again = PhaseLedger.restore("provisioning", 90_000.0, 3.6, second.phases_json())
    assert again.dollars(90_500.0) == pytest.approx(1.5)
    assert PhaseLedger("terminated", 5.0).continued(9.0, 5.0).done == {}  # nothing to keep


def test_the_agent_takes_the_checkpoint_archive_under_its_one_name() -> None:
    assert UPLOAD_NAME.fullmatch(CHECKPOINT_UPLOAD)
    for name in ("checkpoint.tar", "checkpoint-4.tar.gz", "checkpoint.tar.gz.part", "ckpt.tgz"):
        assert not UPLOAD_NAME.fullmatch(name), name


def _archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def _start_with(agent: AgentProcess, tmp_path: Path, archive: bytes) -> tuple[str, str]:
    cfg = tiny_run_config(2)
    cfg["checkpoint"] = {"resume_from_checkpoint": "latest"}  # as a resumed job's config
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / CHECKPOINT_UPLOAD).write_bytes(archive)
    async with AgentClient(agent.url, agent.token) as client:
        await client.upload("config.json", tmp_path / "config.json")
        await client.upload(CHECKPOINT_UPLOAD, tmp_path / CHECKPOINT_UPLOAD)
        await client.start("exec-r", {})
        deadline = time.monotonic() + 60
        while (health := await client.health()).phase not in ("finished", "failed"):
            assert time.monotonic() < deadline, health
            await asyncio.sleep(0.1)
        return health.phase, health.error


def test_a_checkpoint_archive_reaching_outside_the_output_folder_fails_the_run(
    tmp_path: Path,
) -> None:
    evil = _archive({"checkpoint-2/trainer_state.json": b"{}", "../../escaped.txt": b"x"})
    with running_agent(tmp_path / "pod") as agent:
        phase, error = asyncio.run(_start_with(agent, tmp_path, evil))
        trainer_ran = "trainer started" in agent.stderr()
    assert phase == "failed" and "checkpoint.tar.gz: refusing member '../../escaped.txt'" in error
    assert not trainer_ran
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (tmp_path / "pod/output/checkpoint-2").exists()  # nothing of it unpacked


def test_the_agent_unpacks_the_checkpoint_into_the_output_folder_before_the_trainer(
    tmp_path: Path,
) -> None:
    """A checkpoint without its weights: the trainer's 'latest' finds the unpacked folder and
    refuses it as incomplete, so it was in the output folder before the trainer started."""
    state = json.dumps({"global_step": 2}).encode()
    with running_agent(tmp_path / "pod") as agent:
        phase, _ = asyncio.run(
            _start_with(agent, tmp_path, _archive({"checkpoint-2/trainer_state.json": state}))
        )
        log = (tmp_path / "pod/trainer.log").read_text(errors="replace")
    unpacked = tmp_path / "pod/output/checkpoint-2"
    assert incomplete_reason(unpacked) == "no model or adapter weights in it"
    assert phase == "failed"
    assert "checkpoint-2: not a complete checkpoint, no model or adapter weights" in log, log
    assert not (tmp_path / "pod/files" / CHECKPOINT_UPLOAD).exists()


def test_points_the_polling_missed_are_read_from_the_downloaded_event_log(tmp_path: Path) -> None:
    """A pod stopped before its last lines were polled: collecting stores them from the event
    log that came home (metrics only, each once), so a resume leaves no gap."""
    from app.core.ingest import Ingestor
    from app.core.runpod.poller import EventFeed, unread_metric_lines
    from app.core.store import Store

    store = Store(tmp_path / "store.sqlite")
    job = store.create_job(name="j", method="sft", model="m", target="runpod")
    lines = [
        {"seq": n, "kind": "metric", "job_id": job.id, "data": {"step": n, "train_loss": 1.0}}
        for n in (1, 2, 3, 4, 6)
    ]
    lines.insert(4, {"seq": 5, "kind": "alert", "job_id": job.id, "data": {"type": "job_failed"}})
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(json.dumps(line) for line in lines) + '\n{"seq": 7, "ki')
    # seq 1-3 were polled and stored while the pod ran
    store.add_metrics(job.id, [{"step": n, "train_loss": 1.0} for n in (1, 2, 3)])
    feed = EventFeed(store, Ingestor(store), job.id, last_seq=3)
    missed = unread_metric_lines(log, feed.last_seq)
    assert [line["seq"] for line in missed] == [4, 6]
    feed.feed(missed)
    assert [p["step"] for p in store.metrics(job.id)] == [1, 2, 3, 4, 6]
    assert store.alerts(job.id) == [] and store.require_job(job.id).status == "queued"
    assert unread_metric_lines(log, feed.last_seq) == []
    assert unread_metric_lines(tmp_path / "absent.jsonl", 0) == []
    store.close()
