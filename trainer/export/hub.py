"""The one push to the Hugging Face Hub (private unless asked otherwise), used at the end of a
run (``output.push_to_hub``) and by ``python -m trainer export --hub``.

The token comes from ``HF_TOKEN`` (the app passes it from the keyring); ``HF_ENDPOINT`` points
huggingface_hub elsewhere (the tests' stand-in for the Hub).
"""

from __future__ import annotations

import os
from pathlib import Path

from trainer.export.progress import SILENT, Progress


class HubPushError(RuntimeError):
    """The Hub refused or could not be reached; the model is safe on disk."""


def hub_token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool = True,
    commit_message: str,
    ignore_patterns: list[str] | None = None,
    progress: Progress = SILENT,
) -> str:
    """Create ``repo_id`` (private by default; an existing one is reused as it is) and upload
    ``folder`` to it in one commit; return the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token())
    try:
        progress.stage("hub", f"creating {repo_id} ({'private' if private else 'public'})")
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        progress.stage("hub", f"uploading {folder} to {repo_id}")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            ignore_patterns=ignore_patterns,
            commit_message=commit_message,
        )
    except Exception as err:  # network, auth, quota: all leave the local result intact
        raise HubPushError(f"pushing to {repo_id!r} failed ({type(err).__name__}: {err})") from err
    return str(getattr(info, "commit_url", "") or repo_id)
