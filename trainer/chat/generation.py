"""Rendering a conversation as the run trained on it, and the streaming, stoppable generation.

Prompts are tokenised by TRL's own SFT tokeniser (``trl.data_utils._tokenize``): chat turns go
through ``apply_chat_template(..., add_generation_prompt=True)``, plain text through the
tokenizer itself, exactly as SFTTrainer tokenised the prompts of the training rows. A tokenizer
without a chat template (a text or continued-pretraining run) continues the turns' text as
written.

Tokens are streamed by a ``BaseStreamer`` that decodes everything generated so far and emits the
new text (held back while it ends inside a multi-byte character); a ``StoppingCriteria`` polls
a flag set by the stdin reader, so Stop ends the loop after the token in progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.chat.protocol import GenerateRequest, Message

Emit = Callable[[str], None]


def has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def plain_text(conversation: list[Message]) -> str:
    """Turns as text for a model without a chat template: their contents, a blank line apart."""
    return "\n\n".join(turn["content"] for turn in conversation)


def prompt_ids(tokenizer: Any, conversation: list[Message] | str) -> list[int]:
    """The prompt's token ids as TRL's SFT tokenised training prompts."""
    from trl.data_utils import _tokenize  # the very function SFTTrainer uses

    if isinstance(conversation, list) and not has_template(tokenizer):
        conversation = plain_text(conversation)
    if isinstance(conversation, list):
        result = _tokenize(tokenizer, conversation, add_generation_prompt=True)
    else:
        result = _tokenize(tokenizer, conversation)
    ids = result["input_ids"]
    return [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]


def eos_ids(tokenizer: Any, model: Any) -> list[int]:
    found: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        for i in value if isinstance(value, list) else [value]:
            if i is not None and int(i) not in found:
                found.append(int(i))
    return found


class TextStream:
    """A transformers streamer that emits each piece of new text as it is decoded."""

    def __init__(self, tokenizer: Any, emit: Emit) -> None:
        self.tokenizer = tokenizer
        self.emit = emit
        self.ids: list[int] = []
        self.text = ""
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() hands the prompt over first
            self._prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, *, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return  # the rest of a multi-byte character is still to come
        if text.startswith(self.text):
            new = text[len(self.text) :]
        else:  # a later token changed how earlier ones decode: send what is new after it
            common = next(
                (n for n, (a, b) in enumerate(zip(text, self.text, strict=False)) if a != b),
                min(len(text), len(self.text)),
            )
            new = text[common:] if len(text) > len(self.text) else ""
        if new:
            self.emit(new)
        self.text = text


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: int
    seconds: float
    reason: str  # "eos", "length" or "stopped"
    prompt_tokens: int


def generate(
    model: Any,
    tokenizer: Any,
    request: GenerateRequest,
    *,
    device: str,
    should_stop: Callable[[], bool],
    emit: Emit,
    started: Callable[[int], None] = lambda n: None,
) -> Answer:
    """Generate an answer to ``request``, emitting its text as it comes."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopFlag(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = should_stop()
            return torch.full(
                (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
            )

    ids = prompt_ids(tokenizer, request.conversation())
    started(len(ids))
    input_ids = torch.tensor([ids], device=device)
    stream = TextStream(tokenizer, emit)
    eos = eos_ids(tokenizer, model)
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "max_new_tokens": request.max_new_tokens,
        "min_new_tokens": request.min_new_tokens or None,
        "streamer": stream,
        "stopping_criteria": StoppingCriteriaList([StopFlag()]),
        "eos_token_id": eos or None,
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": not request.greedy,
    }
    if request.greedy:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(temperature=request.temperature, top_p=request.top_p, top_k=None)
        if request.seed is not None:
            torch.manual_seed(request.seed)
    began = time.monotonic()
    with torch.inference_mode():
        output = model.generate(**kwargs)
    seconds = time.monotonic() - began
    new = [int(i) for i in output[0, len(ids) :].tolist()]
    if should_stop():
        reason = "stopped"
    elif new and new[-1] in eos:
        reason = "eos"
    else:
        reason = "length"
    return Answer(stream.text, len(new), seconds, reason, len(ids))
