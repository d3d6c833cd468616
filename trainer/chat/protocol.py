"""The chat verb's requests (one JSON object a line on stdin) and their limits. Light module.

Requests::

    {"op": "generate", "id": "r1", "messages": [{"role": "user", "content": "Hi"}, ...],
     "system": "You are terse.", "max_new_tokens": 256, "temperature": 0.7, "top_p": 0.95,
     "seed": 1, "min_new_tokens": 0}
    {"op": "generate", "id": "r2", "prompt": "plain text or a list of chat turns"}
    {"op": "stop"}                               # ends the generation in progress
    {"op": "rows", "id": "r3", "split": "eval", "limit": 50}
    {"op": "quit"}                               # (or end of input) the verb exits 0

Events (stdout): ``loading``, ``ready`` (model, adapter, device, dtype, template, seconds),
``start`` (id, prompt_tokens), ``token`` (id, text: the new text), ``done`` (id, text, tokens,
seconds, reason "eos" | "length" | "stopped"), ``rows`` (id, split, rows: [{index, prompt,
reference}], total, note), ``failed`` (id, message, hint: this request only) and ``error``
(message, hint: the verb cannot go on and exits).

``temperature`` 0 is greedy decoding (then top_p and seed do not matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.chat import ChatError

OPS = ("generate", "stop", "rows", "quit")
MAX_NEW_TOKENS_LIMIT = 32_768
ROWS_LIMIT = 10_000
Message = dict[str, str]
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class GenerateRequest:
    id: str
    # chat turns (rendered with the chat template) or a plain string (tokenised as it is)
    prompt: list[Message] | str
    system: str = ""
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    min_new_tokens: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def conversation(self) -> list[Message] | str:
        """The turns to render: the system prompt first unless the turns bring their own."""
        if isinstance(self.prompt, str):
            return self.prompt
        if self.system and not (self.prompt and self.prompt[0]["role"] == "system"):
            return [{"role": "system", "content": self.system}, *self.prompt]
        return self.prompt


@dataclass(frozen=True)
class RowsRequest:
    id: str
    split: str = "eval"
    limit: int = 100


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChatError(f"{key}: a number is needed (got {value!r})")
    if not low <= value <= high:
        raise ChatError(f"{key}: must be between {low:g} and {high:g} (got {value!r})")
    return float(value)


def _turns(value: Any, where: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise ChatError(f"{where}: a non-empty list of chat turns is needed")
    turns = []
    for n, turn in enumerate(value):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ROLES
            or not isinstance(turn.get("content"), str)
        ):
            raise ChatError(
                f"{where}[{n}]: each turn needs a role ({', '.join(ROLES)}) and a text content"
            )
        turns.append({"role": str(turn["role"]), "content": str(turn["content"])})
    return turns


def parse_generate(data: dict[str, Any]) -> GenerateRequest:
    request_id = str(data.get("id", ""))
    if "messages" in data:
        prompt: list[Message] | str = _turns(data["messages"], "messages")
    elif isinstance(data.get("prompt"), str):
        prompt = data["prompt"]
    elif "prompt" in data:
        prompt = _turns(data["prompt"], "prompt")
    else:
        raise ChatError("generate: give 'messages' (chat turns) or 'prompt'")
    system = data.get("system") or ""
    if not isinstance(system, str):
        raise ChatError("system: text is needed")
    max_new = int(_number(data, "max_new_tokens", 256, 1, MAX_NEW_TOKENS_LIMIT))
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ChatError(f"seed: a whole number of at least 0, or null (got {seed!r})")
    return GenerateRequest(
        id=request_id,
        prompt=prompt,
        system=system,
        max_new_tokens=max_new,
        temperature=_number(data, "temperature", 0.7, 0.0, 5.0),
        top_p=_number(data, "top_p", 0.95, 0.01, 1.0),
        seed=seed,
        min_new_tokens=int(_number(data, "min_new_tokens", 0, 0, max_new)),
    )


def parse_rows(data: dict[str, Any]) -> RowsRequest:
    split = data.get("split", "eval")
    if split not in ("eval", "train"):
        raise ChatError(f"split: 'eval' or 'train' (got {split!r})")
    limit = int(_number(data, "limit", 100, 1, ROWS_LIMIT))
    return RowsRequest(id=str(data.get("id", "")), split=split, limit=limit)
