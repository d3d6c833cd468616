"""The doctor's trained-token marks against the labels TRL's own collator produces.

For each dataset the trainer's real TRL trainer is built (trainer.methods.build_trainer, the tiny
model), its prepared train_dataset is collated example by example, and the positions whose label
is not -100 (SFT) or whose completion_mask is 1 (DPO) must equal the doctor's marks on the tokens
it says are kept; the examples the doctor says are dropped must be the ones TRL dropped. Both the
batched marks (every row's statistics) and the rendered samples (TRL's own preparation) are held
to it. max_length is small so that rows are cut and one row's prompt alone fills it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer.config import RunConfig, parse_config
from trainer.data import detect_format, read_rows
from trainer.data.prepare import prepare_groups
from trainer.doctor.marks import Cut, Encoded, batch_encode, cut, encode_context, trl_encode
from trainer.doctor.report import run_doctor

MAX_LENGTH = 40
LONG = "tell me everything you know about the moon and the sun and the stars in order " * 3


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _messages() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "name a colour"},
                {"role": "assistant", "content": "blue " * 30},
            ]
        },
        {"messages": [{"role": "user", "content": LONG}, {"role": "assistant", "content": "ok"}]},
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "two"},
                {"role": "user", "content": "three"},
                {"role": "assistant", "content": "four"},
            ]
        },
    ]


def _prompt_completion() -> list[dict[str, Any]]:
    return [
        {"prompt": "The capital of France is", "completion": " Paris."},
        {"prompt": "Count:", "completion": " one two three four five six seven eight nine" * 3},
        {"prompt": LONG, "completion": " fine"},
    ]


def _alpaca() -> list[dict[str, Any]]:
    return [
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hello.", "output": "hello " * 25},
        {"instruction": LONG, "output": "no"},
    ]


def _preference() -> list[dict[str, Any]]:
    return [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Colour of the sky?", "chosen": "blue " * 20, "rejected": "green"},
        {"prompt": LONG, "chosen": "yes", "rejected": "no"},
        {
            "prompt": [{"role": "user", "content": "Hi there"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        },
    ]


def _config(tmp_path: Path, model: Path, method: str, data: Path, **extra: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "version": 1,
        "name": "doctor-marks",
        "method": method,
        "model": {"name_or_path": str(model)},
        "dataset": {"path": str(data), "eval_fraction": 0.0, "shuffle": False},
        "adapter": {"kind": "lora", "r": 4, "alpha": 8},
        "training": {"max_length": MAX_LENGTH, "max_steps": 1},
        "output": {"output_dir": str(tmp_path / "out")},
        **extra,
    }
    return parse_config(raw)


def _trl_trainer(cfg: RunConfig, tmp_path: Path) -> Any:
    """The trainer's own TRL trainer for cfg, built as trainer/run.py builds it."""
    from trainer.data import load_run_data
    from trainer.methods import MethodContext, build_trainer
    from trainer.methods.arguments import common_args
    from trainer.modeling import load_causal_lm, load_tokenizer, plan_device, resolve_model_path
    from trainer.run import _to_dataset

    data = load_run_data(cfg, base_dir=tmp_path)
    plan = plan_device(cfg)
    path = resolve_model_path(cfg.model.name_or_path, tmp_path)
    tokenizer = load_tokenizer(cfg, path)
    ctx = MethodContext(
        cfg=cfg,
        model=load_causal_lm(cfg, path, plan),
        tokenizer=tokenizer,
        train_dataset=_to_dataset(data.train),
        eval_dataset=None,
        plan=plan,
        output_dir=tmp_path / "out",
        model_path=path,
        args=common_args(cfg, plan, tmp_path / "out", has_eval=False),
    )
    return build_trainer(ctx), tokenizer


def _collated(trainer: Any, method: str) -> list[list[tuple[list[int], list[bool]]]]:
    """Per example TRL kept, per sequence: (ids, trained) as the collator hands them over."""
    out = []
    for example in trainer.train_dataset:
        batch = trainer.data_collator([example])
        if method == "sft":
            ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
            out.append([(ids, [lab != -100 for lab in labels])])
        elif method == "kto":  # one sequence: prompt + completion
            ids, mask = batch["input_ids"][0].tolist(), batch["completion_mask"][0].tolist()
            out.append([(ids, [bool(m) for m in mask])])
        else:
            seqs = []
            for k in range(2):  # chosen, rejected
                keep = batch["attention_mask"][k].bool()
                seqs.append(
                    (
                        batch["input_ids"][k][keep].tolist(),
                        [bool(m) for m in batch["completion_mask"][k][keep].tolist()],
                    )
                )
            out.append(seqs)
    return out


def _kept(enc: Encoded, c: Cut) -> tuple[list[int], list[bool]]:
    return enc.ids[c.start : c.end], enc.trained[c.start : c.end]


def _check(cfg: RunConfig, tmp_path: Path, tiny_model_dir: Path) -> None:
    trainer, tokenizer = _trl_trainer(cfg, tmp_path)
    expected = _collated(trainer, cfg.method)

    rows = read_rows(cfg.dataset.path)
    fmt = detect_format(rows, cfg.dataset.path)
    examples = [ex for group in prepare_groups(rows, fmt, cfg.method) for ex in group]
    ctx = encode_context(cfg, tokenizer)
    doctor_kept = []
    dropped = 0
    for seqs in batch_encode(examples, ctx):
        cuts = [cut(e, ctx) for e in seqs]
        if any(c.dropped for c in cuts):
            dropped += 1
            continue
        doctor_kept.append([_kept(e, c) for e, c in zip(seqs, cuts, strict=True)])
    assert dropped >= 1, "the long prompt must be dropped for the test to mean something"
    assert doctor_kept == expected

    report = run_doctor(cfg, base_dir=tmp_path, sample=len(rows))
    assert report.path == "batched" and report.checked_against_trl >= len(examples)
    assert report.dropped == dropped and report.truncated >= 1
    kinds = {f.kind: f for f in report.findings}
    assert kinds["no_trained_token"].count == dropped and kinds["truncated"].count >= 1
    shown = [[_kept(s.enc, s.cut)] for s in report.samples if not s.cut.dropped]
    flat_expected = [[seq] for example in expected for seq in example]
    assert shown[: len(flat_expected)] == flat_expected


@pytest.mark.parametrize(
    ("name", "rows", "extra"),
    [
        ("messages", _messages(), {}),
        ("prompt_completion", _prompt_completion(), {}),
        ("alpaca", _alpaca(), {}),
        ("messages_full_loss", _messages(), {"sft": {"completion_only_loss": False}}),
        ("text", [{"text": "a short document."}, {"text": LONG}], {}),
    ],
)
def test_sft_marks_equal_trl_collator_labels(
    tmp_path: Path,
    tiny_model_dir: Path,
    name: str,
    rows: list[dict[str, Any]],
    extra: dict[str, Any],
) -> None:
    data = _write(tmp_path / f"{name}.jsonl", rows)
    if name in ("messages_full_loss", "text"):
        # every token trained: nothing is dropped, a long row is only cut
        cfg = _config(tmp_path, tiny_model_dir, "sft", data, **extra)
        trainer, tokenizer = _trl_trainer(cfg, tmp_path)
        expected = _collated(trainer, "sft")
        ctx = encode_context(cfg, tokenizer)
        fmt = "text" if name == "text" else "messages"
        examples = [ex for g in prepare_groups(read_rows(str(data)), fmt, "sft") for ex in g]
        encoded = batch_encode(examples, ctx)
        got = [[_kept(e, cut(e, ctx)) for e in seqs] for seqs in encoded]
        assert got == expected
        assert all(all(t) for seqs in got for _, t in seqs)
        assert any(cut(e, ctx).truncated(len(e.ids)) for seqs in encoded for e in seqs)
        exact = trl_encode(examples, ctx)
        assert [[(e.ids, e.trained) for e in g] for g in exact] == [
            [(e.ids, e.trained) for e in g] for g in encoded
        ]
        return
    _check(_config(tmp_path, tiny_model_dir, "sft", data, **extra), tmp_path, tiny_model_dir)


@pytest.mark.parametrize("max_prompt_length", [None, 6])
def test_dpo_marks_equal_trl_collator_completion_mask(
    tmp_path: Path, tiny_model_dir: Path, max_prompt_length: int | None
) -> None:
    data = _write(tmp_path / "pref.jsonl", _preference())
    cfg = _config(
        tmp_path, tiny_model_dir, "dpo", data, dpo={"max_prompt_length": max_prompt_length}
    )
    trainer, tokenizer = _trl_trainer(cfg, tmp_path)
    expected = _collated(trainer, "dpo")
    rows = read_rows(str(data))
    examples = [ex for g in prepare_groups(rows, "preference", "dpo") for ex in g]
    ctx = encode_context(cfg, tokenizer)
    got = []
    dropped = 0
    for seqs in batch_encode(examples, ctx):
        cuts = [cut(e, ctx) for e in seqs]
        if any(c.dropped for c in cuts):
            dropped += 1
            continue
        got.append([_kept(e, c) for e, c in zip(seqs, cuts, strict=True)])
    assert dropped == 1
    assert got == expected
    report = run_doctor(cfg, base_dir=tmp_path, sample=len(rows))
    assert report.path == "batched"
    shown = [_kept(s.enc, s.cut) for s in report.samples if not s.cut.dropped]
    assert shown[: 2 * len(expected)] == [seq for pair in expected for seq in pair]


def test_kto_marks_equal_trl_collator_completion_mask(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [
        {"prompt": "Is the sky blue?", "completion": " Yes, on a clear day.", "label": True},
        {"prompt": "Is fire cold?", "completion": " yes " * 30, "label": False},
        {"prompt": LONG, "completion": " maybe", "label": True},
        {"prompt": "2+2?", "completion": " 4", "label": True},
    ]
    data = _write(tmp_path / "kto.jsonl", rows)
    cfg = _config(
        tmp_path,
        tiny_model_dir,
        "kto",
        data,
        training={"max_length": MAX_LENGTH, "max_steps": 1, "per_device_train_batch_size": 2},
    )
    _check(cfg, tmp_path, tiny_model_dir)
