"""Tiny real training runs inside a reporting session, in the test process.

``session_run`` does what trainer/run.py does around the session (config → TRL trainer built by
the method module → attach → train) on the tiny model, so tests can also patch the trainer
(NaN loss, CUDA OOM) or signal the process mid-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QA = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Say hello.", "Hello world!"),
    ("Name a color.", "Blue is a color."),
    ("Count to three.", "One two three."),
    ("What is two plus two?", "Two plus two is four."),
    ("Name an animal.", "The cat is an animal."),
]
ROWS = [
    {
        "prompt": [{"role": "user", "content": q}],
        "completion": [{"role": "assistant", "content": a}],
    }
    for q, a in QA
] * 3
BAD = "no no bad terrible sorry."
# Rows for every method, in the shape trainer.data.prepare hands to TRL.
METHOD_ROWS: dict[str, list[dict[str, Any]]] = {
    "sft": ROWS,
    "cpt": [{"text": f"{q} {a}"} for q, a in QA] * 3,
    "dpo": [
        {
            "prompt": r["prompt"],
            "chosen": r["completion"],
            "rejected": [{"role": "assistant", "content": BAD}],
        }
        for r in ROWS
    ],
    "kto": [{**r, "label": True} for r in ROWS]
    + [{**r, "completion": [{"role": "assistant", "content": BAD}], "label": False} for r in ROWS],
    "grpo": [{"prompt": r["prompt"]} for r in ROWS],
}
METHOD_ROWS["orpo"] = METHOD_ROWS["dpo"]


def run_config(
    model_dir: Path, out: Path, *, method: str = "sft", **sections: dict[str, Any]
) -> Any:
    from trainer.config import parse_config

    data: dict[str, Any] = {
        "method": method,
        "model": {"name_or_path": str(model_dir)},
        "adapter": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0},
        "training": {"max_steps": 8, "max_length": 64, "per_device_train_batch_size": 2},
        "logging": {"logging_steps": 2},
        "checkpoint": {"save_strategy": "steps", "save_steps": 4, "save_total_limit": 5},
        "evaluation": {"strategy": "steps", "eval_steps": 4},
        "output": {"output_dir": str(out)},
        "runtime": {"device": "cpu"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data)


@dataclass
class RunOutcome:
    session: Any
    trainer: Any
    error: BaseException | None
    seconds: float  # wall time of trainer.train()
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads) during train()


def tiny_trainer(
    cfg: Any, model_dir: Path, out: Path, callbacks: list[Any], overrides: dict[str, Any]
) -> Any:
    from datasets import Dataset

    from trainer.methods import MethodContext, build_trainer
    from trainer.methods.arguments import common_args
    from trainer.modeling import load_causal_lm, load_tokenizer, plan_device

    plan = plan_device(cfg)
    rows = METHOD_ROWS[cfg.method]
    eval_rows = rows[:4] if cfg.evaluation.strategy != "no" else None
    args = common_args(cfg, plan, out, has_eval=eval_rows is not None)
    args.update(overrides)
    ctx = MethodContext(
        cfg=cfg,
        model=load_causal_lm(cfg, str(model_dir), plan),
        tokenizer=load_tokenizer(cfg, str(model_dir)),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        plan=plan,
        output_dir=out,
        model_path=str(model_dir),
        args=args,
        callbacks=callbacks,
    )
    return build_trainer(ctx)


def session_run(
    cfg: Any,
    model_dir: Path,
    out: Path,
    *,
    resume: str | None = None,
    patch: Callable[[Any], None] | None = None,
    extra_callbacks: list[Any] | None = None,
    reporting: bool = True,
) -> RunOutcome:
    """Train ``cfg`` in a reporting session; an exception is caught and returned."""
    import time

    from trainer.reporting.session import reporting_session

    if not reporting:  # the same run with no reporting at all (the baseline)
        trainer = tiny_trainer(cfg, model_dir, out, list(extra_callbacks or []), {})
        began, cpu = time.perf_counter(), time.process_time()
        trainer.train(resume_from_checkpoint=resume)
        return RunOutcome(
            None, trainer, None, time.perf_counter() - began, time.process_time() - cpu
        )

    trainer = None
    seconds = cpu_seconds = 0.0
    error: BaseException | None = None
    try:
        with reporting_session(cfg, execution_id="exec-1", output_dir=out) as session:
            callbacks = [*session.callbacks, *(extra_callbacks or [])]
            trainer = tiny_trainer(cfg, model_dir, out, callbacks, session.training_args_overrides)
            session.attach(trainer)
            if patch is not None:
                patch(trainer)
            began, cpu = time.perf_counter(), time.process_time()
            trainer.train(resume_from_checkpoint=resume)
            seconds = time.perf_counter() - began
            cpu_seconds = time.process_time() - cpu
    except BaseException as exc:  # the test asserts on it
        error = exc
    return RunOutcome(session, trainer, error, seconds, cpu_seconds)
