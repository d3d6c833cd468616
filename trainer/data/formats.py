"""Dataset row formats: which one a file is (judged from every row), whether each row fits it,
and which formats each training method takes.

Problems are lines a user can act on: ``line 12, field "messages[1].role": must be one of
system, user, assistant, tool (got "bot")``. Light module: the standard library and the config
schema's names, no ML libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from trainer.config.fields import DatasetFormat

if TYPE_CHECKING:
    from trainer.data.readers import Row

# the schema's list (trainer.config.DatasetFormat) without its "auto"
FORMATS: tuple[str, ...] = tuple(f for f in get_args(DatasetFormat) if f != "auto")

ACCEPTED_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("messages", "sharegpt", "alpaca", "text", "prompt_completion"),
    "cpt": ("text",),
    "dpo": ("preference",),
    "orpo": ("preference",),
    "kto": ("kto", "preference"),
    "grpo": ("prompt", "prompt_completion", "messages", "sharegpt", "alpaca"),
    "rlhf": ("preference",),
}
# rlhf whose reward comes from elsewhere (rlhf.reward_model, or pairs in rlhf.reward_dataset)
# only needs prompts from the main dataset
RLHF_PROMPT_FORMATS: tuple[str, ...] = (
    "preference",
    "prompt",
    "prompt_completion",
    "messages",
    "sharegpt",
    "alpaca",
    "kto",
)

FORMAT_FIELDS: dict[str, str] = {
    "messages": '"messages" (a list of {"role", "content"})',
    "sharegpt": '"conversations" (a list of {"from", "value"})',
    "alpaca": '"instruction" and "output" (and optional "input")',
    "text": '"text"',
    "prompt_completion": '"prompt" and "completion"',
    "prompt": '"prompt" (plus optional extras such as "reference")',
    "preference": '"chosen" and "rejected" (and optional "prompt")',
    "kto": '"prompt", "completion" and a true/false "label"',
}

METHOD_NEEDS: dict[str, str] = {
    "sft": 'chat rows ("messages" or ShareGPT "conversations"), Alpaca rows, "text" rows or '
    '"prompt"/"completion" rows',
    "cpt": 'rows with "text"',
    "dpo": 'preference rows with "chosen" and "rejected"',
    "orpo": 'preference rows with "chosen" and "rejected"',
    "kto": 'rows with "prompt", "completion" and a true/false "label", or preference rows with '
    '"chosen" and "rejected"',
    "grpo": 'rows with prompts ("prompt", "prompt"/"completion", chat or Alpaca)',
    "rlhf": 'preference rows with "chosen" and "rejected" to train its reward model (or '
    "rlhf.reward_model set, then any rows with prompts)",
}

MESSAGE_ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = ("human", "gpt", "system", "tool", "user", "assistant")
MAX_PROBLEMS = 10
SHOWN_CHARS = 60  # of a user's text quoted in a problem line


# -------------------------------------------------------------------------------- errors


class DatasetError(ValueError):
    """A dataset that cannot be used as it is. ``problems`` holds one line per problem
    (``line 12, field "x": ...``), ``hint`` what to do, ``source`` the file, URL or Hub id."""

    def __init__(self, problems: list[str], hint: str = "", source: str | None = None) -> None:
        self.problems = list(problems)
        self.hint = hint
        self.source = source
        where = f"{source}: " if source else ""
        text = where + "; ".join(self.problems)
        super().__init__(f"{text} (hint: {hint})" if hint else text)


def clipped(text: str, limit: int = SHOWN_CHARS) -> str:
    """A user's text (a field name, a value's repr) as a problem line quotes it: cut to
    ``limit`` characters, and a lone surrogate (JSON's "\\ud800" escape makes one) escaped, so
    that the line stays short and prints."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class ProblemList:
    """Keeps the first ``limit`` problems and counts the rest, so a million bad rows cost
    nothing to report."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.limit = limit
        self.kept: list[str] = []
        self.total = 0

    def add(self, problem: str) -> None:
        self.total += 1
        if len(self.kept) < self.limit:
            self.kept.append(problem)

    def extend(self, problems: Iterable[str]) -> None:
        for p in problems:
            self.add(p)

    def __bool__(self) -> bool:
        return self.total > 0

    def lines(self) -> list[str]:
        more = self.total - len(self.kept)
        return self.kept + ([f"... and {more} more"] if more else [])


# ------------------------------------------------------------------------------ detection


def classify(data: dict[str, Any]) -> str | None:
    """The format a single row claims by its keys (None: no known format).

    Partial rows still claim their format (a row with "chosen" but no "rejected" is a broken
    preference row), so the problem named is the missing field, not "unknown format"."""
    if "messages" in data:
        return "messages"
    if "conversations" in data:
        return "sharegpt"
    if "chosen" in data or "rejected" in data:
        return "preference"
    if "label" in data and "completion" in data:
        return "kto"
    if "instruction" in data:
        return "alpaca"
    if "completion" in data:
        return "prompt_completion"
    if "prompt" in data:
        return "prompt"
    if "text" in data:
        return "text"
    return None


def line_ranges(lines: Sequence[int], limit: int = 6) -> str:
    """``[1, 2, 3, 7, 9, 10]`` → ``"1-3, 7, 9-10"`` (at most ``limit`` ranges)."""
    spans: list[str] = []
    start = prev = lines[0]
    count = 0
    for n in [*lines[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        count += 1
        if len(spans) < limit:
            spans.append(f"{start}-{prev}" if prev > start else str(start))
        if n is not None:
            start = prev = n
    if count > limit:
        spans.append(f"... ({count - limit} more ranges)")
    return ", ".join(spans)


@dataclass
class FormatScan:
    """What a pass over every row found: the format (None when there is no single one), the
    lines of each format seen, and the problems."""

    fmt: str | None
    lines_by_format: dict[str, list[int]] = field(default_factory=dict)
    problems: ProblemList = field(default_factory=ProblemList)
    hint: str = ""


def scan_rows(rows: Sequence[Row], declared: str = "auto") -> FormatScan:
    """Judge every row: the format ("auto": detected, else ``declared``) and every problem."""
    if declared != "auto" and declared not in FORMATS:
        scan = FormatScan(None)
        scan.problems.add(f"dataset.format: unknown format {declared!r}")
        scan.hint = f"one of auto, {', '.join(FORMATS)}"
        return scan
    unit = rows[0].unit if rows else "line"
    by_format: dict[str, list[int]] = {}
    unknown: list[Row] = []
    for row in rows:
        fmt = classify(row.data)
        if fmt is None:
            unknown.append(row)
        else:
            by_format.setdefault(fmt, []).append(row.line)
    scan = FormatScan(None, by_format)
    if declared != "auto":
        scan.fmt = declared
        _check_rows(rows, declared, scan, declared=True)
        if scan.problems and declared not in by_format and len(by_format) == 1:
            found = next(iter(by_format))
            scan.hint = (
                f'dataset.format is "{declared}" but the rows look like "{found}"; set it to '
                f'"{found}" or "auto"'
            )
        elif scan.problems:
            scan.hint = f'every "{declared}" row needs {FORMAT_FIELDS[declared]}'
        return scan
    if len(by_format) > 1:
        scan.problems.add(_mix_problem(by_format, unit))
        scan.hint = _mix_hint(by_format)
    for row in unknown:
        scan.problems.add(_unknown_row_problem(row))
    if len(by_format) > 1:
        return scan
    if not by_format:
        scan.hint = "rows need the fields of one format: " + "; ".join(
            f"{name}: {fields}" for name, fields in FORMAT_FIELDS.items()
        )
        return scan
    scan.fmt = next(iter(by_format))
    _check_rows(rows, scan.fmt, scan, declared=False)
    if scan.problems:
        scan.hint = f'every "{scan.fmt}" row needs {FORMAT_FIELDS[scan.fmt]}'
    return scan


def detect_format(rows: Sequence[Row], source: str | None = None, declared: str = "auto") -> str:
    """The one format every row has (checked row by row), else DatasetError naming the rows.

    With ``declared`` other than "auto" (config ``dataset.format``), every row is checked
    against that format instead."""
    if not rows:
        raise DatasetError(["holds no rows"], "add rows, or pick another file", source)
    scan = scan_rows(rows, declared)
    if scan.problems or scan.fmt is None:
        raise DatasetError(scan.problems.lines(), scan.hint, source)
    return scan.fmt


def _unknown_row_problem(row: Row) -> str:
    if not row.data:
        return f"{row.where}: empty row"
    keys = ", ".join(f'"{clipped(k)}"' for k in list(row.data)[:8])
    return f"{row.where}: no known format (fields {keys})"


def _mix_problem(by_format: dict[str, list[int]], unit: str) -> str:
    ordered = sorted(by_format.items(), key=lambda kv: -len(kv[1]))
    parts = []
    for fmt, lines in ordered:
        noun = unit if len(lines) == 1 else unit + "s"
        verb = "is" if len(lines) == 1 else "are"
        parts.append(f'{noun} {line_ranges(lines)} {verb} "{fmt}"')
    return "rows of different formats: " + ", ".join(parts)


def _mix_hint(by_format: dict[str, list[int]]) -> str:
    if set(by_format) == {"prompt", "prompt_completion"}:
        return (
            'some rows have a "completion" and some do not: add the missing completions, or set '
            'dataset.format to "prompt" to use only the prompts'
        )
    return (
        "use one format per file (split the file, or convert the odd rows); or set "
        "dataset.format to read every row as one format"
    )


def _check_rows(rows: Sequence[Row], fmt: str, scan: FormatScan, *, declared: bool) -> None:
    check = ROW_CHECKS[fmt]
    for row in rows:
        if not row.data:
            if declared:  # "auto" reported it with the unknown rows already
                scan.problems.add(f"{row.where}: empty row")
            continue
        if not declared and classify(row.data) is None:
            continue  # reported as a row of no known format
        found = check(row.data)
        if not found:
            continue
        if declared and (own := classify(row.data)) not in (None, fmt):
            found[0] += f' (the row looks like "{own}")'
        for problem in found:
            scan.problems.add(f"{row.where}, {problem}")


# ------------------------------------------------------------------------------ row checks


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _text(data: dict[str, Any], key: str, out: list[str], *, optional: bool = False) -> None:
    if key not in data:
        if not optional:
            out.append(f'field "{key}": missing')
        return
    value = data[key]
    if optional and (value is None or value == ""):
        return
    _text_value(value, key, out)


def _text_value(value: Any, where: str, out: list[str]) -> None:
    if not isinstance(value, str):
        out.append(f'field "{where}": must be a string (got {_kind(value)})')
    elif not value.strip():
        out.append(f'field "{where}": is empty')


def _turns(
    value: Any,
    where: str,
    out: list[str],
    *,
    role_key: str = "role",
    content_key: str = "content",
    roles: tuple[str, ...] = MESSAGE_ROLES,
) -> None:
    """A list of chat turns, each {role_key: one of roles, content_key: non-empty string}."""
    if not isinstance(value, list):
        out.append(
            f'field "{where}": must be a list of {{"{role_key}", "{content_key}"}} '
            f"(got {_kind(value)})"
        )
        return
    if not value:
        out.append(f'field "{where}": is an empty list')
        return
    for i, turn in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(turn, dict):
            out.append(
                f'field "{at}": must be an object {{"{role_key}", "{content_key}"}} '
                f"(got {_kind(turn)})"
            )
            continue
        role = turn.get(role_key)
        if role not in roles:
            said = "missing" if role_key not in turn else f"got {clipped(repr(role))}"
            out.append(f'field "{at}.{role_key}": must be one of {", ".join(roles)} ({said})')
        content = turn.get(content_key)
        if content_key not in turn:
            if not turn.get("tool_calls"):
                out.append(f'field "{at}.{content_key}": missing')
        elif not isinstance(content, str):
            # an assistant turn that only calls tools may carry no text
            if not (content is None and turn.get("tool_calls")):
                out.append(f'field "{at}.{content_key}": must be a string (got {_kind(content)})')
        elif not content.strip() and not turn.get("tool_calls"):
            out.append(f'field "{at}.{content_key}": is empty')
        if len(out) >= MAX_PROBLEMS:  # one long broken conversation is enough said
            return


def _text_or_turns(data: dict[str, Any], key: str, out: list[str]) -> None:
    if key not in data:
        out.append(f'field "{key}": missing')
        return
    value = data[key]
    if isinstance(value, list):
        _turns(value, key, out)
    else:
        _text_value(value, key, out)


def label_value(value: Any) -> bool | None:
    """A KTO label as a bool: true/false, or the strings "true"/"false" (CSV); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _check_messages(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "messages" not in data:
        return ['field "messages": missing']
    _turns(data["messages"], "messages", out)
    return out


def _check_sharegpt(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "conversations" not in data:
        return ['field "conversations": missing']
    _turns(
        data["conversations"],
        "conversations",
        out,
        role_key="from",
        content_key="value",
        roles=SHAREGPT_ROLES,
    )
    return out


def _check_alpaca(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    _text(data, "instruction", out)
    _text(data, "input", out, optional=True)
    _text(data, "output", out)
    _text(data, "system", out, optional=True)
    return out


def _check_text(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    _text(data, "text", out)
    return out


def _check_prompt_completion(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    _text_or_turns(data, "prompt", out)
    _text_or_turns(data, "completion", out)
    return out


def _check_prompt(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    _text_or_turns(data, "prompt", out)
    return out


def _check_preference(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "prompt" in data and data["prompt"] not in (None, ""):
        _text_or_turns(data, "prompt", out)
    _text_or_turns(data, "chosen", out)
    _text_or_turns(data, "rejected", out)
    if not out and data["chosen"] == data["rejected"]:
        out.append('fields "chosen" and "rejected": are the same, so there is nothing to prefer')
    return out


def _check_kto(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    _text_or_turns(data, "prompt", out)
    _text_or_turns(data, "completion", out)
    if label_value(data.get("label")) is None:
        given = data.get("label")
        said = clipped(repr(given)) if isinstance(given, str) else _kind(given)
        out.append(f'field "label": must be true or false (got {said})')
    return out


ROW_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "messages": _check_messages,
    "sharegpt": _check_sharegpt,
    "alpaca": _check_alpaca,
    "text": _check_text,
    "prompt_completion": _check_prompt_completion,
    "prompt": _check_prompt,
    "preference": _check_preference,
    "kto": _check_kto,
}


# -------------------------------------------------------------------------------- methods


def accepted_formats(method: str, *, has_reward_model: bool = False) -> tuple[str, ...]:
    """The formats ``method`` trains on; rlhf with a reward from elsewhere takes any prompts."""
    if method == "rlhf" and has_reward_model:
        return RLHF_PROMPT_FORMATS
    return ACCEPTED_FORMATS[method]


def method_problem(fmt: str, method: str, *, has_reward_model: bool = False) -> str | None:
    """Why ``method`` cannot train on ``fmt`` rows, or None when it can."""
    if method not in ACCEPTED_FORMATS:
        return f"unknown method {method!r}"
    if fmt in accepted_formats(method, has_reward_model=has_reward_model):
        return None
    return f'{method} needs {METHOD_NEEDS[method]}; this file is "{fmt}"'


def method_hint(fmt: str) -> str:
    takers = [m for m, formats in ACCEPTED_FORMATS.items() if fmt in formats]
    if fmt in RLHF_PROMPT_FORMATS and "rlhf" not in takers:
        takers.append("rlhf with rlhf.reward_model set")
    if not takers:
        return "convert the rows to a format the method takes"
    return f'"{fmt}" rows suit {", ".join(takers)}; or convert the rows for this method'


def check_method(
    fmt: str, method: str, *, has_reward_model: bool = False, source: str | None = None
) -> None:
    """DatasetError when ``method`` does not train on ``fmt`` rows."""
    problem = method_problem(fmt, method, has_reward_model=has_reward_model)
    if problem is not None:
        raise DatasetError([problem], method_hint(fmt), source)
