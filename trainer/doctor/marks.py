"""Token ids and trained/masked marks of prepared examples, as the trainer's TRL trainer makes them.

Two ways to the same marks:

- ``trl_encode`` runs TRL's own dataset preparation (``SFTTrainer._prepare_dataset``,
  ``DPOTrainer._prepare_dataset``, ``KTOTrainer._prepare_dataset``) on the examples, with
  ``max_length=None`` so that nothing is cut or dropped yet: the ids and labels are TRL's by
  construction. TRL reads three attributes of its trainer there (the tokenizer, the chat template
  override and ``completion_only_loss``); a stand-in object carries them, set as the trainer's
  ``__init__`` sets them for the configs Tunedeck builds (trainer/methods/).
- ``batch_encode`` makes the same calls TRL's per-example ``tokenize_fn`` makes
  (``apply_chat_template(..., tokenize=True)`` or the tokenizer itself), batched, so the fast
  tokenizer runs over thousands of rows at once. The doctor checks it against ``trl_encode`` on
  its sample rows in every run and falls back to ``trl_encode`` for all rows on any difference.

Truncation (``cut``) follows the collators and filters: SFT slices input_ids and labels to
``max_length`` (``truncation_mode``) and drops an example left with no trained token; DPO and KTO
drop an example whose prompt alone fills ``max_length`` and slice the rest from the start.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from trainer.config import RunConfig

PAIR_METHODS = ("dpo", "orpo")
PROMPT_ONLY_METHODS = ("grpo", "rlhf")


@dataclass(frozen=True)
class Encoded:
    """One sequence the model sees: ``part`` is "" (one per example), "chosen"/"rejected"
    (preference pairs) or "prompt" (online methods, whose answers are generated)."""

    part: str
    ids: list[int]
    trained: list[bool]
    prompt_len: int  # DPO/KTO: tokens before the completion, before any prompt truncation


@dataclass(frozen=True)
class Cut:
    start: int  # the kept tokens are ids[start:end]
    end: int
    dropped: bool  # the trainer drops the example (no learning signal left)

    def truncated(self, length: int) -> bool:
        return self.end - self.start < length


@dataclass(frozen=True)
class EncodeContext:
    tokenizer: Any
    method: str
    max_length: int
    completion_only_loss: bool
    truncation_mode: str
    packing: bool
    packing_strategy: str
    max_prompt_length: int | None

    @property
    def approximate(self) -> bool:
        """ORPO lives in trl.experimental with its own tokenisation; its marks follow DPO's."""
        return self.method == "orpo"


def encode_context(cfg: RunConfig, tokenizer: Any) -> EncodeContext:
    """What the trainer's method module passes to TRL (trainer/methods/), for the marks."""
    method = cfg.method
    packing, strategy = False, "bfd"
    if method == "sft":
        packing = cfg.sft.packing
    elif method == "cpt":
        packing, strategy = cfg.cpt.packing, "wrapped"  # as trainer/methods/cpt.py
    return EncodeContext(
        tokenizer=tokenizer,
        method=method,
        max_length=cfg.training.max_length,
        completion_only_loss=cfg.sft.completion_only_loss if method == "sft" else False,
        truncation_mode=_default_truncation_mode(method),
        packing=packing,
        packing_strategy=strategy,
        max_prompt_length=cfg.dpo.max_prompt_length if method == "dpo" else None,
    )


def _default_truncation_mode(method: str) -> str:
    if method in ("sft", "cpt"):
        from trl.trainer.sft_config import SFTConfig

        return str(SFTConfig.truncation_mode)
    if method in PAIR_METHODS:
        from trl.trainer.dpo_config import DPOConfig

        return str(DPOConfig.truncation_mode)
    return "keep_start"  # KTO's collator only keeps the start


# ------------------------------------------------------------------------------ TRL's own


def _trl_args(ctx: EncodeContext) -> Any:
    """The method's TRL config with max_length=None: tokenise, cut nothing (``cut`` does)."""
    common: dict[str, Any] = {
        "output_dir": "tunedeck-doctor",  # never written: only dataset preparation runs
        "max_length": None,
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
    }
    if ctx.method in ("sft", "cpt"):
        from trl.trainer.sft_config import SFTConfig

        return SFTConfig(
            **common,
            packing=False,
            completion_only_loss=ctx.completion_only_loss,
            dataset_text_field="text",
        )
    if ctx.method in PAIR_METHODS:
        from trl.trainer.dpo_config import DPOConfig

        return DPOConfig(**common)
    from trl.trainer.kto_config import KTOConfig

    return KTOConfig(**common)


def trl_encode(examples: Sequence[dict[str, Any]], ctx: EncodeContext) -> list[list[Encoded]]:
    """Per example, its sequences with TRL's ids and labels (see the module docstring)."""
    if not examples:
        return []
    if ctx.method in PROMPT_ONLY_METHODS:
        return batch_encode(examples, ctx)  # the prompt alone: one chat-template call
    import datasets  # type: ignore[import-untyped]  # datasets ships no py.typed

    datasets.disable_progress_bars()
    dataset = datasets.Dataset.from_list(list(examples))
    tok = ctx.tokenizer
    args = _trl_args(ctx)
    if ctx.method in ("sft", "cpt"):
        from trl.trainer.sft_trainer import SFTTrainer

        # SFTTrainer.__init__ sets chat_template to None unless assistant_only_loss (never set
        # here) and completion_only_loss to args.completion_only_loss when that is not None
        stand_in: Any = SimpleNamespace(
            _tokenizer=tok, chat_template=None, completion_only_loss=ctx.completion_only_loss
        )
        done = SFTTrainer._prepare_dataset(stand_in, dataset, tok, args, False, None, "doctor")
        return [
            [Encoded("", list(ids), [lab != -100 for lab in labels], _first_trained(labels))]
            for ids, labels in zip(done["input_ids"], done["labels"], strict=True)
        ]
    if ctx.method in PAIR_METHODS:
        from trl.trainer.dpo_trainer import DPOTrainer

        from trainer.methods.dpo import _truncate_prompts

        pair_stand_in: Any = SimpleNamespace(_tokenizer=tok)
        done = DPOTrainer._prepare_dataset(pair_stand_in, dataset, tok, args, "doctor")
        raw_prompt_lens = [len(p) for p in done["prompt_ids"]]
        if ctx.max_prompt_length is not None:
            holder = SimpleNamespace(train_dataset=done, eval_dataset=None)
            _truncate_prompts(holder, ctx.max_prompt_length)  # the trainer's own cut
            done = holder.train_dataset
        return [
            [_joined("chosen", p, c, raw), _joined("rejected", p, r, raw)]
            for p, c, r, raw in zip(
                done["prompt_ids"],
                done["chosen_ids"],
                done["rejected_ids"],
                raw_prompt_lens,
                strict=True,
            )
        ]
    from trl.trainer.kto_trainer import KTOTrainer

    # calculate_KL adds mismatched (prompt, other completion) pairs for the KL estimate: extra
    # sequences, not the rows' own marks
    kto_stand_in: Any = SimpleNamespace(_tokenizer=tok, calculate_KL=False)
    done = KTOTrainer._prepare_dataset(kto_stand_in, dataset, tok, args, "doctor")
    return [
        [_joined("", p, c, len(p))]
        for p, c in zip(done["prompt_ids"], done["completion_ids"], strict=True)
    ]


def _first_trained(labels: Sequence[int]) -> int:
    return next((i for i, lab in enumerate(labels) if lab != -100), len(labels))


def _joined(part: str, prompt: Sequence[int], answer: Sequence[int], raw_prompt: int) -> Encoded:
    """What the preference collators build: prompt + answer, the answer marked."""
    return Encoded(
        part, [*prompt, *answer], [False] * len(prompt) + [True] * len(answer), raw_prompt
    )


# ------------------------------------------------------------------------------- batched


def _is_chat(value: Any) -> bool:
    return isinstance(value, list)


def _with_eos(text: str, eos: str) -> str:
    return text if text.endswith(eos) else text + eos


def _chat_ids(tok: Any, conversations: list[Any], **kwargs: Any) -> list[list[int]]:
    if not conversations:
        return []
    # TRL's call, batched; the attention masks it also makes are all ones and not needed here
    out = tok.apply_chat_template(
        conversations,
        tokenize=True,
        return_dict=True,
        tokenizer_kwargs={"return_attention_mask": False},
        **kwargs,
    )
    ids: list[list[int]] = out["input_ids"]
    return ids


def _text_ids(tok: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    ids: list[list[int]] = tok(texts, return_attention_mask=False)["input_ids"]
    return ids


def _prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """TRL's common_prefix_length, with the usual case (a is a prefix of b) done in C."""
    n = len(a)
    if list(b[:n]) == list(a):
        return n
    k = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        k += 1
    return k


def _prompt_and_full(
    tok: Any, prompts: list[Any], fulls: list[Any], chat: bool
) -> tuple[list[list[int]], list[list[int]]]:
    if chat:
        # TRL passes tools=None (no "tools" column) and, for SFT, chat_template=None
        return (
            _chat_ids(tok, prompts, add_generation_prompt=True, tools=None),
            _chat_ids(tok, fulls, tools=None),
        )
    return _text_ids(tok, prompts), _text_ids(tok, fulls)


def _marked(full: list[int], n: int, mask_prompt: bool) -> Encoded:
    return Encoded(
        "", full, [False] * n + [True] * (len(full) - n) if mask_prompt else [True] * len(full), n
    )


def _prompt_lens(
    tok: Any, prompts: list[Any], fulls: list[Any], chat: bool
) -> tuple[list[list[int]], list[int]]:
    """TRL's full ids and prompt lengths (the common prefix of the prompt's and the full text's
    tokens) from the exact two tokenizer calls."""
    prompt_ids, full_ids = _prompt_and_full(tok, prompts, fulls, chat)
    return full_ids, [_prefix_len(p, f) for p, f in zip(prompt_ids, full_ids, strict=True)]


_REASONING = frozenset(("reasoning_content", "thinking", "reasoning"))


def _plain_messages(conversation: Any) -> bool:
    """Only dicts of strings, none of them a reasoning field: what transformers' rendering copies
    and aliases comes out the same as it went in."""
    return isinstance(conversation, list) and all(
        type(m) is dict
        and all(type(k) is str and type(v) is str for k, v in m.items())
        and _REASONING.isdisjoint(m)
        for m in conversation
    )


def _rendered(tok: Any, conversations: list[Any], *, add_generation_prompt: bool) -> list[str]:
    """``apply_chat_template(c, tokenize=False, tools=None, ...)`` for each conversation. A
    conversation of plain string messages goes straight to the compiled template with the same
    variables, without the per-call deep copy (``_plain_template_data``) and checks that cost as
    much as the rendering; any other goes through ``apply_chat_template``. transformers' private
    template compiler: when it moves, everything goes through ``apply_chat_template``."""
    compile_: Any = None
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template

        compile_ = _compile_jinja_template
    except ImportError:
        pass
    if compile_ is None or not conversations:
        out: list[str] = tok.apply_chat_template(
            conversations, tokenize=False, add_generation_prompt=add_generation_prompt, tools=None
        )
        return out
    template = compile_(tok.get_chat_template(None, None))
    variables = dict(tok.special_tokens_map)
    return [
        template.render(
            messages=c,
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **variables,
        )
        if _plain_messages(c)
        else tok.apply_chat_template(
            c, tokenize=False, add_generation_prompt=add_generation_prompt, tools=None
        )
        for c in conversations
    ]


def _offset_prompt_lens(
    tok: Any, prompts: list[Any], fulls: list[Any], chat: bool
) -> tuple[list[list[int]], list[int]] | None:
    """The same from ONE tokenisation of the full texts: the prompt length is the number of
    leading tokens that end inside the prompt's text. None when the tokenizer has no Rust
    backend or a rendered prompt is not a prefix of its full text. Not exact in general (a token
    can straddle the boundary differently when the prompt is tokenised alone): ``fast_prompt_lens``
    checks it against ``_prompt_lens`` on the rows where it would matter."""
    backend = getattr(tok, "_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch"):
        return None
    if chat:
        prompt_texts = _rendered(tok, prompts, add_generation_prompt=True)
        full_texts = _rendered(tok, fulls, add_generation_prompt=False)
    else:
        prompt_texts, full_texts = prompts, fulls
    if not all(f.startswith(p) for p, f in zip(prompt_texts, full_texts, strict=True)):
        return None
    # apply_chat_template tokenises its rendering without special tokens; text goes through
    # the tokenizer's own call, which adds them
    encs = backend.encode_batch(full_texts, add_special_tokens=not chat)
    ids, lens = [], []
    for p, enc in zip(prompt_texts, encs, strict=True):
        # the token holding the completion's first character: the tokens before it end inside
        # the prompt (tokens come in text order)
        n = enc.char_to_token(len(p))
        if n is None:  # that character is in no token (dropped by the normaliser): count
            n = _leading_within(enc.offsets, len(p))
        ids.append(enc.ids)
        lens.append(n)
    return ids, lens


def _leading_within(offsets: Sequence[tuple[int, int]], end: int) -> int:
    """How many leading tokens end at or before character ``end``."""
    return sum(1 for _ in itertools.takewhile(lambda o: o[1] <= end, offsets))


CHECKED_ROWS = 32  # rows of every batch whose prompt is also tokenised alone, as TRL does
# tokens: a token straddling the prompt's end moves the prompt length by one or two; a row whose
# prompt ends this close to the cut or to its own end may be dropped or not by that difference
NEAR = 8


def fast_prompt_lens(
    tok: Any, prompts: list[Any], fulls: list[Any], chat: bool, limit: int
) -> tuple[list[list[int]], list[int]]:
    """Full ids and prompt lengths as ``_prompt_lens`` makes them, with one tokenisation instead
    of two where that is safe: the offset-based lengths are used only when they equal the exact
    ones on the first ``CHECKED_ROWS`` rows and on every row whose prompt comes within ``NEAR``
    tokens of ``limit`` or of the row's end (where it decides whether the row is dropped); on any
    difference the whole batch is tokenised the exact way."""
    fast = _offset_prompt_lens(tok, prompts, fulls, chat)
    if fast is None:
        return _prompt_lens(tok, prompts, fulls, chat)
    ids, lens = fast
    check = [
        i
        for i, (x, n) in enumerate(zip(ids, lens, strict=True))
        if i < CHECKED_ROWS or n + NEAR >= min(len(x), limit)
    ]
    exact_ids, exact_lens = _prompt_lens(
        tok, [prompts[i] for i in check], [fulls[i] for i in check], chat
    )
    for i, x, n in zip(check, exact_ids, exact_lens, strict=True):
        if ids[i] != x or lens[i] != n:
            return _prompt_lens(tok, prompts, fulls, chat)
    return ids, lens


def batch_encode(examples: Sequence[dict[str, Any]], ctx: EncodeContext) -> list[list[Encoded]]:
    """The same sequences as ``trl_encode``, from batched tokenizer calls."""
    if not examples:
        return []
    tok = ctx.tokenizer
    eos = tok.eos_token
    first = examples[0]
    if ctx.method in PROMPT_ONLY_METHODS:
        prompts = [ex["prompt"] for ex in examples]
        ids = (
            _chat_ids(tok, prompts, add_generation_prompt=True, tools=None)
            if _is_chat(first["prompt"])
            else _text_ids(tok, prompts)
        )
        return [[Encoded("prompt", x, [False] * len(x), len(x))] for x in ids]
    if "text" in first:
        ids = _text_ids(tok, [_with_eos(ex["text"], eos) for ex in examples])
        return [[Encoded("", x, [True] * len(x), 0)] for x in ids]
    chat = _is_chat(first["prompt"]) or _is_chat(first.get("completion", first.get("chosen")))
    if ctx.method in PAIR_METHODS:
        return _batch_pairs(examples, ctx, chat)
    prompts = [ex["prompt"] for ex in examples]
    if chat:
        fulls = [ex["prompt"] + ex["completion"] for ex in examples]
    else:
        fulls = [ex["prompt"] + _with_eos(ex["completion"], eos) for ex in examples]
    full_ids, prompt_lens = fast_prompt_lens(tok, prompts, fulls, chat, ctx.max_length)
    mask_prompt = ctx.completion_only_loss or ctx.method == "kto"
    return [[_marked(full, n, mask_prompt)] for full, n in zip(full_ids, prompt_lens, strict=True)]


def _batch_pairs(
    examples: Sequence[dict[str, Any]], ctx: EncodeContext, chat: bool
) -> list[list[Encoded]]:
    tok, eos = ctx.tokenizer, ctx.tokenizer.eos_token
    prompts = [ex["prompt"] for ex in examples]
    if chat:
        chosen = [ex["prompt"] + ex["chosen"] for ex in examples]
        rejected = [ex["prompt"] + ex["rejected"] for ex in examples]
    else:
        chosen = [ex["prompt"] + _with_eos(ex["chosen"], eos) for ex in examples]
        rejected = [ex["prompt"] + _with_eos(ex["rejected"], eos) for ex in examples]
    prompt_ids, chosen_ids = _prompt_and_full(tok, prompts, chosen, chat)
    rejected_ids = _chat_ids(tok, rejected, tools=None) if chat else _text_ids(tok, rejected)
    out = []
    for p, c, r in zip(prompt_ids, chosen_ids, rejected_ids, strict=True):
        n = min(_prefix_len(p, c), _prefix_len(p, r))
        start = max(0, n - ctx.max_prompt_length) if ctx.max_prompt_length is not None else 0
        out.append(
            [_joined("chosen", c[start:n], c[n:], n), _joined("rejected", r[start:n], r[n:], n)]
        )
    return out


# ------------------------------------------------------------------------------ truncation


def cut(enc: Encoded, ctx: EncodeContext) -> Cut:
    """Which tokens the trainer keeps of ``enc``, and whether it drops the example."""
    n, limit = len(enc.ids), ctx.max_length
    if ctx.method in PROMPT_ONLY_METHODS:
        return Cut(0, n, False)  # prompts are not cut to max_length; answers are generated
    if ctx.packing:
        # "wrapped" (cpt) carries the overflow into the next block; "bfd" cuts it off
        return Cut(0, n if ctx.packing_strategy == "wrapped" else min(n, limit), False)
    if ctx.truncation_mode == "keep_end":
        start, end = max(0, n - limit), n
    else:
        start, end = 0, min(n, limit)
    if ctx.method in ("sft", "cpt"):
        dropped = not any(enc.trained[start:end])
    else:  # DPO/KTO filter on the untruncated prompt before collating
        dropped = ctx.truncation_mode == "keep_start" and enc.prompt_len >= limit
    return Cut(start, end, dropped)
