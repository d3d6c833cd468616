"""One training run, start to finish: config → data → model → method → train → save.

``preflight_problems`` is everything that can be checked without loading a model (used by
`python -m trainer validate` as well); ``run`` does the rest inside the reporting session, so that
a failure anywhere after start-up is reported as the job's failure.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, RunConfig

# The folder that holds trainer/ and resources/, in a checkout and in an installed package alike:
# relative paths that do not exist under the current directory are looked up here, so the
# presets work from anywhere.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SUMMARY_FILE = "run_summary.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class RunResult:
    exit_code: int
    output_dir: Path
    global_step: int = 0
    world_size: int = 1
    resumed_from_step: int | None = None
    stop_reason: str | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    merged_dir: str | None = None
    hub_repo: str | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------ paths


def _resolve(value: str, base_dir: Path) -> str:
    """``value`` made absolute when it names an existing file or folder under ``base_dir`` or,
    failing that, under the package root; otherwise unchanged (a Hub id, a URL)."""
    p = Path(value).expanduser()
    if p.is_absolute() or "://" in value:
        return value
    for root in (base_dir, PACKAGE_ROOT):
        if (root / p).exists():
            return str((root / p).resolve())
    return value


def resolve_paths(cfg: RunConfig, base_dir: Path) -> RunConfig:
    """A copy of ``cfg`` with every relative path it holds made absolute where it exists."""
    cfg = cfg.model_copy(deep=True)
    cfg.dataset.path = _resolve(cfg.dataset.path, base_dir)
    if cfg.dataset.eval_path:
        cfg.dataset.eval_path = _resolve(cfg.dataset.eval_path, base_dir)
    if not cfg.model.name_or_path.startswith("builtin:"):
        cfg.model.name_or_path = _resolve(cfg.model.name_or_path, base_dir)
    if cfg.rlhf.reward_model:
        cfg.rlhf.reward_model = _resolve(cfg.rlhf.reward_model, base_dir)
    if cfg.rlhf.reward_dataset:
        cfg.rlhf.reward_dataset = _resolve(cfg.rlhf.reward_dataset, base_dir)
    if cfg.runtime.accelerate_config:
        cfg.runtime.accelerate_config = _resolve(cfg.runtime.accelerate_config, base_dir)
    resume = cfg.checkpoint.resume_from_checkpoint
    if resume and resume != "latest":
        cfg.checkpoint.resume_from_checkpoint = _resolve(resume, base_dir)
    rewards = []
    for name in cfg.grpo.reward_functions:
        path, sep, func = name.rpartition(":")
        rewards.append(
            f"{_resolve(path, base_dir)}:{func}" if sep and path.endswith(".py") else name
        )
    cfg.grpo.reward_functions = rewards
    return cfg


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The complete checkpoint-N folder with the highest N, if any (a cut-short one is skipped
    with a warning naming it: trainer.checkpoints)."""
    from trainer.checkpoints import latest_complete_checkpoint

    return latest_complete_checkpoint(output_dir)


def resolve_resume(cfg: RunConfig, output_dir: Path) -> str | None:
    """The checkpoint folder to resume from, or None; ConfigError when it does not exist."""
    resume = cfg.checkpoint.resume_from_checkpoint
    if not resume:
        return None
    if resume == "latest":
        found = latest_checkpoint(output_dir)
        if found is None:
            raise ConfigError(
                [
                    f"checkpoint.resume_from_checkpoint: 'latest' found no checkpoint-* folder in "
                    f"{output_dir}; start without resuming, or name a checkpoint folder"
                ]
            )
        return str(found)
    if not (Path(resume) / "trainer_state.json").is_file():
        raise ConfigError(
            [
                f"checkpoint.resume_from_checkpoint: {resume!r} is not a checkpoint folder "
                "(no trainer_state.json in it)"
            ]
        )
    return resume


# -------------------------------------------------------------------------- preflight


def preflight_problems(cfg: RunConfig, base_dir: Path) -> list[str]:
    """Everything wrong with running ``cfg`` here that shows without data or a model."""
    from trainer.methods.rewards import reward_problems
    from trainer.modeling import environment_problems

    problems = environment_problems(cfg)
    try:
        resolve_resume(cfg, cfg.resolved_output_dir(base_dir))
    except ConfigError as err:
        problems.extend(err.problems)
    if cfg.method == "grpo":
        problems.extend(reward_problems(cfg, base_dir))
    if cfg.runtime.accelerate_config and not Path(cfg.runtime.accelerate_config).is_file():
        problems.append(
            f"runtime.accelerate_config: file {cfg.runtime.accelerate_config!r} does not exist"
        )
    return problems


# -------------------------------------------------------------------------------- run


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _to_dataset(rows: Any) -> Any:
    if rows is None:
        return None
    from datasets import Dataset  # type: ignore[import-untyped]  # datasets ships no py.typed

    return rows if isinstance(rows, Dataset) else Dataset.from_list(list(rows))


def _is_conversational(rows: Any) -> bool:
    """Whether TRL will render these rows with a chat template (a field holds messages)."""
    first = next(iter(rows), None) if rows is not None else None
    if not isinstance(first, dict):
        return False
    keys = ("messages", "prompt", "completion", "chosen", "rejected")
    return any(isinstance(first.get(k), list) for k in keys)


def _losses(history: list[dict[str, Any]]) -> list[float]:
    return [float(h["loss"]) for h in history if "loss" in h]


def run(cfg: RunConfig, execution_id: str, *, base_dir: Path | None = None) -> RunResult:
    """Train ``cfg`` to the end (or to a clean stop) and save what it made."""
    from trainer.modeling import (
        load_causal_lm,
        load_tokenizer,
        plan_device,
        resolve_model_path,
        set_torch_threads,
    )
    from trainer.reporting.session import reporting_session

    base_dir = (base_dir or Path.cwd()).resolve()
    cfg = resolve_paths(cfg, base_dir)
    problems = preflight_problems(cfg, base_dir)
    if problems:
        raise ConfigError(problems)
    set_torch_threads(cfg)
    output_dir = cfg.resolved_output_dir(base_dir).resolve()
    resume = resolve_resume(cfg, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    with reporting_session(cfg, execution_id=execution_id, output_dir=output_dir) as session:
        from transformers import set_seed

        from trainer.data import load_reward_data, load_run_data

        data = load_run_data(cfg, base_dir=base_dir)
        reward_data = None
        if cfg.method == "rlhf" and not cfg.rlhf.reward_model:
            reward_data = load_reward_data(cfg, base_dir=base_dir)

        set_seed(cfg.training.seed)
        plan = plan_device(cfg)
        model_path = resolve_model_path(cfg.model.name_or_path, base_dir)
        tokenizer = load_tokenizer(cfg, model_path)
        if not tokenizer.chat_template and _is_conversational(data.train):
            raise ConfigError(
                [
                    f"model.chat_template: {cfg.model.name_or_path!r} ships no chat template and "
                    "the data is chat-formatted; set model.chat_template (e.g. ChatML) or use "
                    "an instruct model"
                ]
            )
        model = load_causal_lm(cfg, model_path, plan)

        from trainer.methods import MethodContext, build_trainer
        from trainer.methods.arguments import common_args

        train_ds = _to_dataset(data.train)
        eval_ds = _to_dataset(data.eval) if data.eval else None
        args = common_args(cfg, plan, output_dir, has_eval=eval_ds is not None)
        args.update(session.training_args_overrides)
        ctx = MethodContext(
            cfg=cfg,
            model=model,
            tokenizer=tokenizer,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            plan=plan,
            output_dir=output_dir,
            model_path=model_path,
            args=args,
            callbacks=list(session.callbacks),
            base_dir=base_dir,
            reward_train_dataset=_to_dataset(reward_data.train) if reward_data else None,
            reward_eval_dataset=(
                _to_dataset(reward_data.eval) if reward_data and reward_data.eval else None
            ),
            phase_callbacks=lambda phase: [session.phase_callback(phase)],
        )
        trainer = build_trainer(ctx)
        session.attach(trainer)
        checkpoint_state = _checkpoint_state(resume)
        resumed_from = _checkpoint_step(checkpoint_state)
        started = time.monotonic()
        if session.stop_reason is None:  # else a stop came during a preliminary phase
            if (
                resume is not None
                and _holds_every_step(checkpoint_state, cfg)
                and _loads_itself(trainer)
            ):
                # transformers trains a step before it first checks max_steps, so resuming from
                # the last step's checkpoint (a stop that landed there) would train past the
                # end: load it and finish instead
                _load_finished(trainer, resume)
                session.training_started(trainer.state)
            else:
                trainer.train(resume_from_checkpoint=resume)

        result = RunResult(
            exit_code=0,
            output_dir=output_dir,
            global_step=trainer.state.global_step,
            world_size=_world_size(),
            resumed_from_step=resumed_from,
            log_history=list(trainer.state.log_history),
        )
        losses = _losses(result.log_history)
        result.first_loss, result.last_loss = (losses[0], losses[-1]) if losses else (None, None)
        if session.stop_reason is None:
            _finish(trainer, tokenizer, cfg, output_dir, model_path, plan.weights_dtype, result)
        result.stop_reason = session.stop_reason
        if trainer.is_world_process_zero():
            _write_summary(cfg, execution_id, result, time.monotonic() - started)
    result.exit_code = session.exit_code
    return result


def _checkpoint_state(resume: str | None) -> dict[str, Any]:
    """The resumed checkpoint's ``trainer_state.json`` ({} when none, or unreadable)."""
    if not resume:
        return {}
    try:
        state = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _checkpoint_step(state: dict[str, Any]) -> int | None:
    try:
        return int(state["global_step"])
    except (KeyError, TypeError, ValueError):
        return None


def _holds_every_step(state: dict[str, Any], cfg: RunConfig) -> bool:
    """Whether the checkpoint was saved at (or past) this run's last planned step: the config's
    ``max_steps``, else (a run planned in epochs, the same epochs as the checkpoint's) the total
    the checkpoint's run planned."""
    step = _checkpoint_step(state)
    try:
        if cfg.training.max_steps:
            planned = cfg.training.max_steps
        elif float(state.get("num_train_epochs") or 0) == cfg.training.num_train_epochs:
            planned = int(state.get("max_steps") or 0)
        else:
            return False  # the epochs changed: transformers works the total out
    except (TypeError, ValueError):
        return False
    return step is not None and planned > 0 and step >= planned


def _loads_itself(trainer: Any) -> bool:
    """DeepSpeed and FSDP load a checkpoint only inside train(): those resume by training."""
    return not (
        getattr(trainer, "is_deepspeed_enabled", False)
        or getattr(trainer, "is_fsdp_enabled", False)
    )


def _load_finished(trainer: Any, resume: str) -> None:
    """The checkpoint's weights and state, as train() would load them before its first step."""
    from transformers.trainer_callback import TrainerState

    trainer._load_from_checkpoint(resume)  # what Trainer.train itself calls to resume
    trainer.state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))


def _finish(
    trainer: Any,
    tokenizer: Any,
    cfg: RunConfig,
    output_dir: Path,
    model_path: str,
    weights_dtype: str,
    result: RunResult,
) -> None:
    from trainer.artifacts import merge_adapter, push_to_hub, save_final

    artifacts = save_final(trainer, tokenizer, cfg, output_dir)
    if not trainer.is_world_process_zero():
        return
    if artifacts.is_adapter and cfg.adapter.merge_after_training:
        result.merged_dir = str(merge_adapter(cfg, model_path, artifacts, weights_dtype))
    if cfg.output.push_to_hub:
        result.hub_repo = push_to_hub(cfg, artifacts, model_path)


def _write_summary(cfg: RunConfig, execution_id: str, result: RunResult, seconds: float) -> None:
    summary = {k: v for k, v in asdict(result).items() if k != "log_history"}
    summary.update(
        execution_id=execution_id,
        method=cfg.method,
        adapter=cfg.adapter.kind,
        output_dir=str(result.output_dir),
        train_seconds=round(seconds, 3),
    )
    (result.output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
