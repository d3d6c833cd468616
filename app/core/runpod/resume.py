"""What a cloud job resumed on a new pod takes with it: the newest complete checkpoint its earlier
pod sent home (``_collect`` downloads the checkpoints of a run that did not complete into the
job's output folder), packed as one archive the pod agent unpacks into the run's output folder
before the trainer starts; and, kept aside, the event log of the earlier pod (the new pod's log
starts again at seq 1, and its download would replace the file).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from app.core.launcher import LaunchError
from trainer.checkpoints import latest_complete_checkpoint
from trainer.events import EVENT_LOG_NAME

CHECKPOINT_UPLOAD = "checkpoint.tar.gz"  # the agent's upload name for it (pod_agent.UPLOAD_NAME)


def checkpoint_to_resume(job_id: str, output_dir: Path) -> Path:
    """The newest complete ``checkpoint-N`` folder in the job's output folder, or a LaunchError
    that says there is none to continue from (naming the incomplete ones) and what to do."""
    skipped: list[str] = []
    found = latest_complete_checkpoint(output_dir, report=skipped.append)
    if found is not None:
        return found
    detail = f" ({'; '.join(skipped)})" if skipped else ""
    raise LaunchError(
        f"job {job_id} has no complete checkpoint to continue from in {output_dir}{detail}",
        "A cloud run's checkpoint comes home when it is cancelled or stopped (budget, max "
        "runtime, failure) after its first checkpoint.save_steps; without one, duplicate the job "
        "as a new run.",
    )


def pack_checkpoint(folder: Path, archive: Path) -> Path:
    """``folder`` as ``archive`` (gzip, fast: weights hardly compress), its members under
    ``checkpoint-N/`` so they unpack into the pod's output folder as they were here. Files only:
    links are not followed or packed."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".part")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname=folder.name, recursive=False)
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            tar.add(
                path,
                arcname=f"{folder.name}/{path.relative_to(folder).as_posix()}",
                recursive=False,
            )
    partial.replace(archive)
    return archive


def keep_event_log(output_dir: Path, pod_id: str | None) -> Path | None:
    """Move the earlier pod's ``events.jsonl`` aside as ``events.<pod id>.jsonl`` (what the new
    pod's download would otherwise overwrite); the store holds every point either way."""
    log_path = output_dir / EVENT_LOG_NAME
    if not log_path.is_file():
        return None
    kept = output_dir / f"events.{pod_id or 'earlier'}.jsonl"
    n = 1
    while kept.exists():
        n += 1
        kept = output_dir / f"events.{pod_id or 'earlier'}.{n}.jsonl"
    log_path.replace(kept)
    return kept
