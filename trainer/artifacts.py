"""What a finished run leaves behind: the adapter or model with its tokenizer, an optional
merged model, and an optional push to the Hugging Face Hub (private by default).

The merge and the push are the export package's (``trainer.export``): one implementation serves
the end of a run and ``python -m trainer export``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.export.hub import HubPushError

__all__ = ["MERGED_DIR", "PUSH_IGNORE", "Artifacts", "HubPushError", "save_final"]

MERGED_DIR = "merged"
# what stays out of a Hub push: training state, logs and the rlhf reward model
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**", "events.jsonl", "reward_model/**"]


@dataclass
class Artifacts:
    output_dir: Path
    is_adapter: bool
    merged_dir: Path | None = None
    hub_repo: str | None = None


def save_final(trainer: Any, tokenizer: Any, cfg: RunConfig, output_dir: Path) -> Artifacts:
    """Save the trained adapter (or full model) and the tokenizer into ``output_dir``."""
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
    return Artifacts(output_dir=output_dir, is_adapter=cfg.adapter.kind != "full")


def merge_adapter(
    cfg: RunConfig, model_path: str, artifacts: Artifacts, weights_dtype: str
) -> Path:
    """Write base + adapter merged into ``merged/`` (see trainer.export.merge: the base is
    loaded again unquantised, so a QLoRA adapter merges into full-precision weights)."""
    from trainer.export.merge import TrainedModel, save_merged

    model = TrainedModel(
        artifacts.output_dir, model_path, cfg.model.revision, cfg.model.trust_remote_code
    )
    folder = save_merged(model, artifacts.output_dir / MERGED_DIR, dtype=weights_dtype)
    artifacts.merged_dir = folder
    return folder


def hub_target(cfg: RunConfig) -> tuple[str, str | None]:
    """(repo id, token): HF_REPO_NAME overrides output.hub_repo; HF_TOKEN is the token."""
    repo = os.environ.get("HF_REPO_NAME") or cfg.output.hub_repo
    if not repo:
        raise HubPushError("output.hub_repo: no repository to push to (set it, or HF_REPO_NAME)")
    return repo, os.environ.get("HF_TOKEN") or None


def push_to_hub(cfg: RunConfig, artifacts: Artifacts, model_path: str | None = None) -> str:
    """Upload the merged model if there is one, else the adapter/model, with a model card;
    return the repo id."""
    from trainer.export.hub import push_folder
    from trainer.export.model_card import write_card

    repo, _ = hub_target(cfg)
    folder = artifacts.merged_dir or artifacts.output_dir
    kind = "merged" if artifacts.merged_dir else ("adapter" if artifacts.is_adapter else "model")
    write_card(
        folder,
        cfg,
        repo_id=repo,
        kind=kind,
        run_dir=artifacts.output_dir,
        base_path=model_path,
        base_dir=Path.cwd(),
    )
    try:
        push_folder(
            folder,
            repo,
            private=cfg.output.hub_private,
            commit_message=f"Tunedeck run {cfg.name} ({cfg.method}, {cfg.adapter.kind})",
            ignore_patterns=None if artifacts.merged_dir else [*PUSH_IGNORE, f"{MERGED_DIR}/**"],
        )
    except HubPushError as err:
        raise HubPushError(
            f"output.push_to_hub: {err}; the trained model is saved in {folder}"
        ) from err
    artifacts.hub_repo = repo
    return repo
