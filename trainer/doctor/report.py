"""The dataset doctor: read a run's dataset as the trainer does, render sample rows with their
trained/masked marks, measure token lengths against max_length, and list what looks wrong.

``run_doctor(cfg, base_dir=, sample=, progress=)`` returns a ``DoctorReport``; ``.as_json()`` is
the ``result`` event of ``python -m trainer doctor --json`` and ``.text()`` the terminal report.
The whole file is examined (not only the training split), each example under the line it came
from. Needs the tokenizer, so it runs in the trainer's environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, RunConfig
from trainer.doctor.beside import Beside
from trainer.doctor.chunks import all_chunk_stats
from trainer.doctor.findings import (
    Finding,
    columns_read,
    duplicates,
    empty_fields,
    example_lines,
    kto_balance,
    preference_checks,
    reward_fields,
)
from trainer.doctor.lengths import histogram
from trainer.doctor.marks import (
    PROMPT_ONLY_METHODS,
    Cut,
    EncodeContext,
    Encoded,
    batch_encode,
    cut,
    trl_encode,
)

Progress = Callable[[int, int], None]
DEFAULT_SAMPLES = 5


@dataclass
class Sample:
    line: int
    part: str
    enc: Encoded
    cut: Cut

    def segments(self, tokenizer: Any) -> list[dict[str, Any]]:
        """Runs of tokens with the same marks, decoded: what the view colours."""
        out: list[dict[str, Any]] = []
        ids, trained = self.enc.ids, self.enc.trained
        start = 0
        for i in range(1, len(ids) + 1):
            here = None if i == len(ids) else self._state(i, trained)
            if here != self._state(start, trained):
                trained_run, kept = self._state(start, trained)
                out.append(
                    {
                        "text": tokenizer.decode(ids[start:i], skip_special_tokens=False),
                        "tokens": i - start,
                        "trained": trained_run,
                        "cut": not kept,
                    }
                )
                start = i
        return out

    def _state(self, i: int, trained: list[bool]) -> tuple[bool, bool]:
        return trained[i], self.cut.start <= i < self.cut.end

    def as_json(self, tokenizer: Any) -> dict[str, Any]:
        return {
            "line": self.line,
            "part": self.part,
            "tokens": len(self.enc.ids),
            "trained_tokens": sum(self.enc.trained[self.cut.start : self.cut.end]),
            "kept": self.cut.end - self.cut.start,
            "cut_at": self.cut.end if self.cut.end < len(self.enc.ids) else None,
            "dropped": self.cut.dropped,
            "segments": self.segments(tokenizer),
        }


@dataclass
class DoctorReport:
    source: str
    fmt: str
    method: str
    model: str
    rows: int
    examples: int
    sequences: int
    max_length: int
    truncated: int
    dropped: int
    histogram: dict[str, Any]
    findings: list[Finding]
    samples: list[Sample]
    tokenizer: Any
    checked_against_trl: int  # sample sequences where the batched marks matched TRL's
    path: str  # "batched" or "trl" (the batched marks differed, every row went through TRL)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def truncated_share(self) -> float:
        return self.truncated / self.sequences if self.sequences else 0.0

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.examples if self.examples else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.fmt,
            "method": self.method,
            "model": self.model,
            "rows": self.rows,
            "examples": self.examples,
            "sequences": self.sequences,
            "max_length": self.max_length,
            "truncated": self.truncated,
            "truncated_share": round(self.truncated_share, 6),
            "dropped": self.dropped,
            "dropped_share": round(self.dropped_share, 6),
            "histogram": self.histogram,
            "findings": [f.as_json() for f in self.findings],
            "samples": [s.as_json(self.tokenizer) for s in self.samples],
            "checked_against_trl": self.checked_against_trl,
            "path": self.path,
            "notes": self.notes,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def text(self) -> str:
        h = self.histogram
        lines = [
            f"dataset: {self.source} ({self.fmt}, {self.rows} rows, {self.examples} examples "
            f"for {self.method})",
            f"model:   {self.model}",
            f"tokens:  median {h['p50']}, 95% {h['p95']}, longest {h['longest']}; "
            f"max_length {self.max_length}",
            f"cut:     {self.truncated} of {self.sequences} sequences truncated "
            f"({self.truncated_share:.1%}); {self.dropped} examples dropped with no trained "
            f"token ({self.dropped_share:.1%})",
            "",
            "length histogram:",
        ]
        peak = max(h["counts"], default=0) or 1
        for lo, hi, n in zip(h["edges"], h["edges"][1:], h["counts"], strict=False):
            mark = " <- max_length" if lo <= self.max_length < hi else ""
            lines.append(f"  {lo:>6}-{hi - 1:<6} {'#' * round(40 * n / peak):<40} {n}{mark}")
        lines.append("")
        if not self.findings:
            lines.append("findings: none")
        for f in self.findings:
            where = ", ".join(str(n) for n in f.lines)
            lines.append(f"[{f.severity}] {f.kind}: {f.message} (lines {where})")
            lines.append(f"    hint: {f.hint}")
        lines.append("")
        lines.append("samples ([[trained]], plain = masked, ✂ = truncation cut):")
        for s in self.samples:
            label = f"line {s.line}" + (f" ({s.part})" if s.part else "")
            body = ""
            for seg in s.segments(self.tokenizer):
                text = seg["text"]
                if seg["cut"] and "✂" not in body:
                    body += "✂"
                body += f"[[{text}]]" if seg["trained"] and not seg["cut"] else text
            lines.append(f"--- {label}{' (dropped)' if s.cut.dropped else ''}")
            lines.append(body)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


# ------------------------------------------------------------------------------ the run


def _policy_purpose(cfg: RunConfig) -> str:
    return "policy" if cfg.method == "rlhf" else "train"


def _row_findings(
    cfg: RunConfig,
    rows: Sequence[Any],
    fmt: str,
    examples: Sequence[tuple[int, dict[str, Any]]],
    base_dir: Path,
) -> list[Finding]:
    from trainer.data.prepare import prepare_groups

    found = empty_fields(rows) + duplicates(rows)
    if fmt == "preference":
        if cfg.method in ("dpo", "orpo"):
            pairs = [(line, ex["prompt"], ex["chosen"], ex["rejected"]) for line, ex in examples]
        else:  # kto/rlhf read pairs too: judge them as pairs
            groups = prepare_groups(rows, fmt, "dpo")
            pairs = [
                (row.line, ex["prompt"], ex["chosen"], ex["rejected"])
                for row, group in zip(rows, groups, strict=True)
                for ex in group
            ]
        found += preference_checks(pairs)
    if cfg.method == "kto":
        labels = [(line, bool(ex["label"])) for line, ex in examples]
        found += kto_balance(labels, cfg.kto.desirable_weight, cfg.kto.undesirable_weight)
    if cfg.method == "grpo":
        from trainer.methods.rewards import RewardLoadError

        try:
            needs = columns_read(cfg.grpo.reward_functions, base_dir)
        except RewardLoadError as err:
            raise ConfigError([str(err)]) from None
        found += reward_fields(examples, needs)
    return found


def _same_marks(a: list[list[Encoded]], b: list[list[Encoded]]) -> bool:
    return [[(e.ids, e.trained) for e in g] for g in a] == [
        [(e.ids, e.trained) for e in g] for g in b
    ]


def run_doctor(
    cfg: RunConfig,
    *,
    base_dir: Path | None = None,
    sample: int = DEFAULT_SAMPLES,
    progress: Progress | None = None,
) -> DoctorReport:
    """Examine ``cfg``'s dataset with ``cfg``'s tokenizer. ConfigError/DatasetError as the
    trainer would raise them for the same config and file."""
    from trainer.data.formats import check_method, detect_format
    from trainer.data.prepare import dataset_source, prepare_groups
    from trainer.data.readers import read_rows
    from trainer.modeling import load_tokenizer, resolve_model_path
    from trainer.run import resolve_paths

    clock = _Stages()
    base = (base_dir or Path.cwd()).resolve()
    cfg = resolve_paths(cfg, base)
    d = cfg.dataset
    source = dataset_source(cfg)
    rows = read_rows(source, split=d.split, subset=d.subset, base_dir=base)
    fmt = detect_format(rows, source, declared=d.format)
    reward_elsewhere = cfg.method == "rlhf" and bool(
        cfg.rlhf.reward_model or cfg.rlhf.reward_dataset
    )
    check_method(fmt, cfg.method, has_reward_model=reward_elsewhere, source=source)
    groups = prepare_groups(rows, fmt, cfg.method, _policy_purpose(cfg), source=source)
    examples = [(row.line, ex) for row, group in zip(rows, groups, strict=True) for ex in group]
    clock.lap("rows")

    # Python work: in a forked child (or a thread) beside the loading and the tokenisation
    row_findings = Beside(lambda: _row_findings(cfg, rows, fmt, examples, base))

    try:
        tokenizer = load_tokenizer(cfg, resolve_model_path(cfg.model.name_or_path, base))
    except OSError as err:  # not found, offline, no access: the user's to fix
        row_findings.result()  # a config error found there comes first
        raise ConfigError(
            [f"model.name_or_path: cannot load the tokenizer of {cfg.model.name_or_path!r}: {err}"]
        ) from None
    from trainer.run import _is_conversational

    plain = [ex for _, ex in examples]
    if not tokenizer.chat_template and _is_conversational(plain):
        row_findings.result()
        raise ConfigError(
            [
                f"model.chat_template: {cfg.model.name_or_path!r} ships no chat template and the "
                "data is chat-formatted; set model.chat_template (e.g. ChatML) or use an instruct "
                "model"
            ]
        )
    from trainer.doctor.marks import encode_context

    ctx = encode_context(cfg, tokenizer)
    clock.lap("load")  # the tokenizer, transformers and TRL
    report = _measure(
        cfg, ctx, source, fmt, len(rows), examples, row_findings.result, sample, progress
    )
    clock.lap("marks")  # with the wait for the findings, if they took longer
    report.timings = {**clock.laps, "findings": row_findings.seconds}  # beside load and marks
    return report


class _Stages:
    """Seconds spent in each stage, for the bench and the curious (``timings`` in the result)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now


def _measure(
    cfg: RunConfig,
    ctx: EncodeContext,
    source: str,
    fmt: str,
    n_rows: int,
    examples: list[tuple[int, dict[str, Any]]],
    row_findings: Callable[[], list[Finding]],
    sample: int,
    progress: Progress | None,
) -> DoctorReport:
    total = len(examples)
    if progress:
        progress(0, total)
    head = [ex for _, ex in examples[:sample]]
    # the batched chunks start before TRL's preparation of the sample rows (which starts a
    # thread, after which the workers could not fork) and are thrown away if the marks differ
    batched = all_chunk_stats(examples, ctx, batched=True)
    exact_head = trl_encode(head, ctx)
    agreed = _same_marks(exact_head, batch_encode(head, ctx))
    if agreed:
        chunk_stats = batched
    else:
        close = getattr(batched, "close", None)
        if close is not None:
            close()
        chunk_stats = all_chunk_stats(examples, ctx, batched=False)
    notes = (
        []
        if agreed
        else [
            "the batched tokenisation differed from TRL's on the sample rows; every row went "
            "through TRL's own preparation (slower)"
        ]
    )
    if ctx.approximate:
        notes.append(
            "ORPO's tokenisation (trl.experimental) is not mirrored: its marks follow DPO's"
        )
    prompt_only = ctx.method in PROMPT_ONLY_METHODS
    if prompt_only:
        notes.append(
            f"{ctx.method} generates its answers: the samples are the prompts as the policy sees "
            "them (chat template with the generation prompt), nothing in them is trained on"
        )
    if ctx.packing:
        notes.append(
            f"rows are packed into blocks of {ctx.max_length} tokens ({ctx.packing_strategy}): "
            + (
                "what overflows a block continues in the next, nothing is cut"
                if ctx.packing_strategy == "wrapped"
                else "a row longer than a block is cut"
            )
        )
    lengths: list[int] = []
    truncated_lines: list[int] = []
    dropped_lines: list[int] = []
    first_truncated: tuple[int, dict[str, Any]] | None = None
    done = 0
    for stats in chunk_stats:
        lengths += stats.lengths
        truncated_lines += stats.truncated_lines
        dropped_lines += stats.dropped_lines
        first_truncated = first_truncated or stats.first_truncated
        done += stats.size
        if progress:
            progress(done, total)

    samples = _samples(examples[:sample], exact_head, ctx)
    if first_truncated is not None and all(s.line != first_truncated[0] for s in samples):
        samples += _samples([first_truncated], trl_encode([first_truncated[1]], ctx), ctx)
    findings = row_findings() + _cut_findings(
        ctx, truncated_lines, dropped_lines, len(lengths), total
    )
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order.get(f.severity, 3), -f.count))
    return DoctorReport(
        source=source,
        fmt=fmt,
        method=cfg.method,
        model=cfg.model.name_or_path,
        rows=n_rows,
        examples=total,
        sequences=len(lengths),
        max_length=ctx.max_length,
        truncated=len(truncated_lines),
        dropped=len(dropped_lines),
        histogram=histogram(lengths, ctx.max_length),
        findings=findings,
        samples=samples,
        tokenizer=ctx.tokenizer,
        checked_against_trl=0 if prompt_only else sum(len(g) for g in exact_head),
        path="batched" if agreed else "trl",
        notes=notes,
    )


def _samples(
    chosen: Sequence[tuple[int, dict[str, Any]]], encoded: list[list[Encoded]], ctx: EncodeContext
) -> list[Sample]:
    return [
        Sample(line, enc.part, enc, cut(enc, ctx))
        for (line, _), seqs in zip(chosen, encoded, strict=True)
        for enc in seqs
    ]


def _cut_findings(
    ctx: EncodeContext, truncated: list[int], dropped: list[int], sequences: int, examples: int
) -> list[Finding]:
    out: list[Finding] = []
    if truncated:
        out.append(
            Finding(
                kind="truncated",
                severity="warning",
                count=len(truncated),
                message=f"{len(truncated)} of {sequences} sequences are longer than "
                f"max_length {ctx.max_length} and are cut ({ctx.truncation_mode})",
                hint="raise training.max_length (memory grows with it) or shorten these rows; "
                "what is cut is never trained on",
                lines=example_lines(truncated),
            )
        )
    if dropped:
        out.append(
            Finding(
                kind="no_trained_token",
                severity="error" if len(dropped) == examples else "warning",
                count=len(dropped),
                message=f"{len(dropped)} of {examples} examples keep no trained token after the "
                "cut (the prompt alone fills max_length) and are dropped by the trainer",
                hint="raise training.max_length or shorten the prompts of these rows",
                lines=example_lines(dropped),
            )
        )
    return out
