"""What the doctor says about a dataset's rows, before any token is counted.

Each check takes the rows as read (``Row``: line number + data) or as the trainer prepares them,
and returns ``Finding``s: a kind, a severity, how many rows, the first example line numbers and a
hint saying what to do. A check that finds nothing returns nothing, so an empty list means a clean
dataset. Light module: no torch, no TRL.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.data.prepare import text_of
from trainer.data.readers import Row
from trainer.doctor.near_dup import digest, near_duplicate_groups, normalise

SEVERITIES = ("error", "warning", "info")
EXAMPLE_LINES = 10  # example line numbers kept per finding
# How lopsided "chosen is longer" must be before it is worth a word: a preference set where the
# longer answer nearly always wins teaches the policy to be long, not to be right.
LENGTH_BIAS_SHARE = 0.75
LENGTH_BIAS_MIN_PAIRS = 20
# TRL's KTO guidance (https://huggingface.co/docs/trl/kto_trainer, "Imbalanced data"): weight the
# rarer kind up so that (desirable_weight x desirable rows) / (undesirable_weight x undesirable
# rows) lies between 1:1 and 4:3. KTOTrainer._prepare_dataset checks the same with 1.33 (from
# Eq. 8 of the KTO paper) and recommends either weight's range; so does the doctor.
KTO_RATIO_RANGE = (1.0, 1.33)
KTO_DOCS = "https://huggingface.co/docs/trl/kto_trainer#imbalanced-data"
# parameters TRL passes to every reward function itself (not dataset columns)
_TRL_REWARD_ARGS = {"completions", "prompts", "completion_ids", "trainer_state", "log_extra"}
BUILTIN_REWARD_COLUMNS = {"match_reference": ("reference",)}


@dataclass
class Finding:
    kind: str
    severity: str
    count: int
    message: str
    hint: str
    lines: list[int] = field(default_factory=list)  # example line numbers (1-based)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def example_lines(rows: Iterable[int]) -> list[int]:
    """The first EXAMPLE_LINES distinct line numbers, in order."""
    out: list[int] = []
    for line in rows:
        if line not in out:
            out.append(line)
        if len(out) >= EXAMPLE_LINES:
            break
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# ---------------------------------------------------------------------------- empty fields


def _blank_fields(value: Any, path: str) -> Iterable[str]:
    """Paths of the strings under ``value`` that are empty or only whitespace."""
    if isinstance(value, str):
        if not value.strip():
            yield path
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _blank_fields(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _blank_fields(inner, f"{path}[{i}]")


def empty_fields(rows: Sequence[Row]) -> list[Finding]:
    hits: list[tuple[int, str]] = []
    for row in rows:
        hits.extend((row.line, path) for path in _blank_fields(row.data, ""))
    if not hits:
        return []
    lines = sorted({line for line, _ in hits})
    fields = sorted({re.sub(r"\[\d+\]", "[]", path) for _, path in hits})
    return [
        Finding(
            kind="empty_field",
            severity="warning",
            count=len(lines),
            message=f"{_plural(len(lines), 'row')} with an empty or whitespace-only field "
            f"({', '.join(fields[:5])})",
            hint="fill these fields in or remove the rows: an empty turn trains the model to "
            "answer with nothing",
            lines=example_lines(line for line, _ in hits),
            detail={"fields": fields},
        )
    ]


# ------------------------------------------------------------------------------ duplicates


def _row_text(value: Any) -> str:
    """Every string in a row, in order, joined: what two rows are compared on. System turns are
    left out: many rows share one system prompt, which says nothing about the rows."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("role") == "system" or value.get("from") == "system":
            return ""
        return "\n".join(_row_text(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_row_text(v) for v in value)
    return str(value)


def duplicates(rows: Sequence[Row]) -> list[Finding]:
    """Exact repeats (the same JSON), then near repeats: the same text once case, punctuation
    and spacing are ignored, or a word-triple MinHash estimate of similarity >= 0.85 (near_dup)."""
    findings: list[Finding] = []
    first_seen: dict[bytes, int] = {}  # by digest: a copy of every row's text would double memory
    exact: list[tuple[int, int]] = []  # (line, line of the first copy)
    unique: list[Row] = []
    for row in rows:
        key = digest(json.dumps(row.data, sort_keys=True, ensure_ascii=False, default=str))
        if key in first_seen:
            exact.append((row.line, first_seen[key]))
        else:
            first_seen[key] = row.line
            unique.append(row)
    if exact:
        findings.append(
            Finding(
                kind="exact_duplicate",
                severity="warning",
                count=len(exact),
                message=f"{_plural(len(exact), 'row')} repeat an earlier row exactly",
                hint="remove the copies: repeated rows are trained on more than once and can "
                "leak into the evaluation split",
                lines=example_lines(line for pair in exact for line in (pair[1], pair[0])),
            )
        )
    texts = [_row_text(r.data) for r in unique]
    groups = near_duplicate_groups(texts)
    near = [[unique[i].line for i in g] for g in groups]
    if near:
        repeats = sum(len(g) - 1 for g in near)
        findings.append(
            Finding(
                kind="near_duplicate",
                severity="info",
                count=repeats,
                message=f"{_plural(repeats, 'row')} nearly repeat another row (same words once "
                "case, punctuation and spacing are ignored, or most word triples shared)",
                hint="look at the example lines; drop copies that say the same thing",
                lines=example_lines(line for g in near for line in g),
                detail={"groups": [g[:5] for g in near[:5]]},
            )
        )
    return findings


# ------------------------------------------------------------------------- preference pairs


def preference_checks(pairs: Sequence[tuple[int, Any, Any, Any]]) -> list[Finding]:
    """``pairs``: (line, prompt, chosen, rejected) as the trainer prepares them."""
    findings: list[Finding] = []
    same = [line for line, _, c, r in pairs if normalise(text_of(c)) == normalise(text_of(r))]
    if same:
        findings.append(
            Finding(
                kind="chosen_equals_rejected",
                severity="error",
                count=len(same),
                message=f"{_plural(len(same), 'pair')} whose chosen and rejected answers are "
                "the same text",
                hint="such a pair carries no preference (its loss gradient is zero); fix or "
                "remove it",
                lines=example_lines(same),
            )
        )
    by_prompt: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    contradicting: list[int] = []
    for line, prompt, c, r in pairs:
        key = json.dumps(prompt, sort_keys=True, ensure_ascii=False, default=str)
        a, b = normalise(text_of(c)), normalise(text_of(r))
        if a == b:
            continue
        seen = by_prompt[key]
        if (b, a) in seen:
            contradicting.extend((seen[(b, a)], line))
        seen.setdefault((a, b), line)
    if contradicting:
        n = len(contradicting) // 2
        findings.append(
            Finding(
                kind="contradicting_pairs",
                severity="warning",
                count=n,
                message=f"{_plural(n, 'pair')} contradict another pair for the same prompt "
                "(A over B, and B over A)",
                hint="decide which answer is better and keep one of the two rows",
                lines=example_lines(contradicting),
            )
        )
    sized = [(line, len(text_of(c)), len(text_of(r))) for line, _, c, r in pairs]
    sized = [s for s in sized if s[1] != s[2]]
    if len(sized) >= LENGTH_BIAS_MIN_PAIRS:
        longer = [line for line, c, r in sized if c > r]
        share = len(longer) / len(sized)
        lopsided = share >= LENGTH_BIAS_SHARE or share <= 1 - LENGTH_BIAS_SHARE
        if lopsided:
            side = "longer" if share >= 0.5 else "shorter"
            count = len(longer) if share >= 0.5 else len(sized) - len(longer)
            findings.append(
                Finding(
                    kind="length_bias",
                    severity="warning",
                    count=count,
                    message=f"the chosen answer is the {side} one in {count / len(sized):.0%} "
                    f"of {len(sized)} pairs",
                    hint=f"the model may learn that {side} is better rather than what makes an "
                    "answer good; add pairs where the better answer is the "
                    f"{'shorter' if side == 'longer' else 'longer'} one",
                    lines=example_lines(
                        longer if share >= 0.5 else [s[0] for s in sized if s[1] < s[2]]
                    ),
                    detail={"chosen_longer_share": round(share, 4), "pairs": len(sized)},
                )
            )
    return findings


# ------------------------------------------------------------------------------------- KTO


def kto_balance(
    labels: Sequence[tuple[int, bool]], desirable_weight: float, undesirable_weight: float
) -> list[Finding]:
    """``labels``: (line, desirable) per prepared KTO example."""
    good = sum(1 for _, d in labels if d)
    bad = len(labels) - good
    if not labels:
        return []
    if good == 0 or bad == 0:
        missing = "undesirable (label false)" if bad == 0 else "desirable (label true)"
        return [
            Finding(
                kind="kto_imbalance",
                severity="error",
                count=len(labels),
                message=f"every row has the same label: no {missing} rows",
                hint="KTO needs both desirable and undesirable examples; add the missing kind",
                lines=example_lines(line for line, _ in labels),
                detail={"desirable": good, "undesirable": bad, "docs": KTO_DOCS},
            )
        ]
    ratio = (desirable_weight * good) / (undesirable_weight * bad)
    low, high = KTO_RATIO_RANGE
    if low <= ratio <= high:
        return []
    # TRL's own recommendation: EITHER desirable_weight OR undesirable_weight in these ranges
    d_base = bad * undesirable_weight / good
    u_base = good * desirable_weight / bad
    advice = (
        f"kto.desirable_weight in [{d_base:.2f}, {d_base * high:.2f}] or "
        f"kto.undesirable_weight in [{u_base / high:.2f}, {u_base:.2f}] (not both)"
    )
    rare = [line for line, d in labels if d == (good < bad)]
    return [
        Finding(
            kind="kto_imbalance",
            severity="warning",
            count=min(good, bad),
            message=f"{good} desirable and {bad} undesirable rows: weighted ratio {ratio:.2f}, "
            f"outside TRL's guidance of {low:g} to {high:.2f}",
            hint=f"set {advice}: TRL's KTO guidance is a weighted desirable / undesirable "
            f"ratio between 1:1 and 4:3 ({KTO_DOCS})",
            lines=example_lines(rare),
            detail={
                "desirable": good,
                "undesirable": bad,
                "weighted_ratio": round(ratio, 4),
                "docs": KTO_DOCS,
            },
        )
    ]


# ------------------------------------------------------------------------------------ GRPO


def reward_columns(func: Callable[..., Any]) -> tuple[str, ...]:
    """The dataset columns a reward function names as parameters (TRL passes them by name)."""
    params = inspect.signature(func).parameters.values()
    return tuple(
        p.name
        for p in params
        if p.name not in _TRL_REWARD_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def columns_read(reward_names: Sequence[str], base_dir: Path | None) -> dict[str, tuple[str, ...]]:
    """For each configured reward, the columns it reads from the rows."""
    from trainer.methods.rewards import BUILTIN_REWARDS, load_user_reward

    out: dict[str, tuple[str, ...]] = {}
    for name in reward_names:
        if name in BUILTIN_REWARDS:
            out[name] = BUILTIN_REWARD_COLUMNS.get(name, ())
        else:
            out[name] = reward_columns(load_user_reward(name, base_dir))
    return out


def _has_value(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, str) and not value.strip())


def reward_fields(
    examples: Sequence[tuple[int, dict[str, Any]]], needs: dict[str, tuple[str, ...]]
) -> list[Finding]:
    """``examples``: (line, prepared policy row). A row lacking a column a reward reads gets no
    opinion (None) or a crash from that reward."""
    findings: list[Finding] = []
    for reward, columns in needs.items():
        for column in columns:
            lacking = [line for line, ex in examples if not _has_value(ex.get(column))]
            if not lacking:
                continue
            findings.append(
                Finding(
                    kind="missing_reward_field",
                    severity="error" if len(lacking) == len(examples) else "warning",
                    count=len(lacking),
                    message=f"{_plural(len(lacking), 'row')} lack {column!r}, which the reward "
                    f"{reward!r} reads",
                    hint=f"add a {column!r} field to these rows (for chat rows: an assistant "
                    f"answer), or drop {reward!r} from grpo.reward_functions",
                    lines=example_lines(lacking),
                    detail={"reward": reward, "column": column},
                )
            )
    return findings
