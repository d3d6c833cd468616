"""What a finished run leaves behind: the adapter or model with its tokenizer, an optional
merged model, and an optional push to the Hugging Face Hub (private by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import RunConfig

MERGED_DIR = "merged"
# what stays out of a Hub push: training state, logs and the rlhf reward model
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", "runs/**", "events.jsonl", "reward_model/**"]


class HubPushError(RuntimeError):
    """The Hub refused or could not be reached; the trained model is safe on disk."""


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
    """Write base + adapter merged into ``merged/``.

    The base is loaded again unquantised rather than merging into the training model: under
    QLoRA that model holds 4-bit weights, and merging into them would lose the adapter's detail.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    base = AutoModelForCausalLM.from_pretrained(
        model_path,
        dtype=dtype[weights_dtype],
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
    )
    merged = PeftModel.from_pretrained(base, str(artifacts.output_dir)).merge_and_unload()
    folder = artifacts.output_dir / MERGED_DIR
    merged.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(artifacts.output_dir)).save_pretrained(folder)
    artifacts.merged_dir = folder
    return folder


def hub_target(cfg: RunConfig) -> tuple[str, str | None]:
    """(repo id, token): HF_REPO_NAME overrides output.hub_repo; HF_TOKEN is the token."""
    repo = os.environ.get("HF_REPO_NAME") or cfg.output.hub_repo
    if not repo:
        raise HubPushError("output.hub_repo: no repository to push to (set it, or HF_REPO_NAME)")
    return repo, os.environ.get("HF_TOKEN") or None


def push_to_hub(cfg: RunConfig, artifacts: Artifacts) -> str:
    """Upload the merged model if there is one, else the adapter/model; return the repo id."""
    from huggingface_hub import HfApi

    repo, token = hub_target(cfg)
    folder = artifacts.merged_dir or artifacts.output_dir
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id=repo, private=cfg.output.hub_private, exist_ok=True)
        api.upload_folder(
            repo_id=repo,
            folder_path=str(folder),
            ignore_patterns=None if artifacts.merged_dir else [*PUSH_IGNORE, f"{MERGED_DIR}/**"],
            commit_message=f"Tunedeck run {cfg.name} ({cfg.method}, {cfg.adapter.kind})",
        )
    except Exception as err:  # network, auth, quota: all leave the local result intact
        raise HubPushError(
            f"output.push_to_hub: pushing to {repo!r} failed ({type(err).__name__}: {err}); "
            f"the trained model is saved in {folder}"
        ) from err
    artifacts.hub_repo = repo
    return repo
