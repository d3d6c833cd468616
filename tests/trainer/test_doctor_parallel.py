"""The doctor's faster paths give what the plain ones give.

One tokenisation with offsets instead of two (``fast_prompt_lens``), the compiled chat template
without transformers' per-call copies (``_rendered``), chunks in forked workers or threads
(``all_chunk_stats``), findings beside the tokenisation (``Beside``), and the near-duplicate text
split once (``normalised_words``), each against the path it replaces, on the tiny model's real
tokenizer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer.config import parse_config
from trainer.doctor import chunks
from trainer.doctor.beside import Beside
from trainer.doctor.marks import (
    _prompt_lens,
    _rendered,
    encode_context,
    fast_prompt_lens,
)
from trainer.doctor.near_dup import normalise, normalised_words


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture
def other_thread() -> Iterator[None]:
    """A second thread alive: fork is then unsafe and the thread paths run."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    yield
    stop.set()
    t.join()


def _chats() -> list[list[dict[str, Any]]]:
    return [
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "name a colour"}],
        # not plain: a reasoning field (aliased by transformers) and a None value (dropped)
        [{"role": "user", "content": "why?", "reasoning": "think first"}],
        [{"role": "user", "content": "one", "name": None}],
    ]


def test_rendered_equals_apply_chat_template(tokenizer: Any) -> None:
    for gen in (True, False):
        expected = tokenizer.apply_chat_template(
            _chats(), tokenize=False, add_generation_prompt=gen, tools=None
        )
        assert _rendered(tokenizer, _chats(), add_generation_prompt=gen) == expected


def _answers() -> list[list[dict[str, Any]]]:
    return [[{"role": "assistant", "content": text}] for text in ("hello", "blue " * 30, "ok")]


def test_fast_prompt_lens_equal_the_two_call_ones_for_chat(tokenizer: Any) -> None:
    prompts = _chats()[:2] * 30
    fulls = [p + a for p, a in zip(prompts, _answers() * 20, strict=True)]
    # limit 12: rows near the cut are checked the exact way too
    for limit in (12, 1000):
        assert fast_prompt_lens(tokenizer, prompts, fulls, True, limit) == _prompt_lens(
            tokenizer, prompts, fulls, True
        )


def test_fast_prompt_lens_equal_the_two_call_ones_for_text(tokenizer: Any) -> None:
    # a prompt ending inside a word: the full text's token straddles the boundary
    pairs = [("The capital of France is", " Paris."), ("Hel", "lo world"), ("Count:", " 1 2 3")]
    prompts = [p for p, _ in pairs] * 30
    fulls = [p + c for p, c in pairs] * 30
    assert fast_prompt_lens(tokenizer, prompts, fulls, False, 1000) == _prompt_lens(
        tokenizer, prompts, fulls, False
    )


def _ctx(tokenizer: Any, tmp_path: Path) -> Any:
    cfg = parse_config(
        {
            "version": 1,
            "name": "doctor-parallel",
            "method": "sft",
            "model": {"name_or_path": "unused"},
            "dataset": {"path": str(tmp_path / "unused.jsonl")},
            "training": {"max_length": 24},
        }
    )
    return encode_context(cfg, tokenizer)


def _examples() -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for i in range(23):
        prompt = [{"role": "user", "content": "tell me about the moon " * (i % 5 + 1)}]
        answer = [{"role": "assistant", "content": "it is far " * (i % 4 + 1)}]
        rows.append((i + 1, {"prompt": prompt, "completion": answer}))
    return rows


def _flat(stats: list[chunks.ChunkStats]) -> tuple[Any, ...]:
    return (
        [n for s in stats for n in s.lengths],
        [n for s in stats for n in s.truncated_lines],
        [n for s in stats for n in s.dropped_lines],
        next((s.first_truncated for s in stats if s.first_truncated), None),
        sum(s.size for s in stats),
    )


def _serial(examples: list[tuple[int, dict[str, Any]]], ctx: Any) -> tuple[Any, ...]:
    return _flat([chunks.chunk_stats(examples, ctx, batched=True)])


# pytest's process has other threads (tqdm's monitor), where Beside and all_chunk_stats rightly
# refuse to fork: the fork paths run in a fresh interpreter with none
_FORK_CHECK = """
import sys, threading
from pathlib import Path
sys.path[:0] = [sys.argv[2]]
from transformers import AutoTokenizer
import test_doctor_parallel as t
from trainer.doctor import chunks
from trainer.doctor.beside import Beside

assert chunks.can_fork(), [x.name for x in threading.enumerate()]
job = Beside(lambda: [1, 2, 3])
assert job.in_process and job.result() == [1, 2, 3]
try:
    Beside(t._fails).result()
    raise SystemExit("no error came back")
except ValueError as err:
    assert "row 3" in str(err)
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ctx, examples = t._ctx(tok, Path(sys.argv[3])), t._examples()
chunks.CHUNK = 4
assert chunks.can_fork(), [x.name for x in threading.enumerate()]
got = t._flat(list(chunks.all_chunk_stats(examples, ctx, batched=True)))
assert got == t._serial(examples, ctx), got
assert got[1] and got[2], "rows must be cut and dropped for the test to mean something"
print("forked ok")
"""


def test_forked_findings_and_chunks_equal_the_serial_ones(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    here = str(Path(__file__).resolve().parent)
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", _FORK_CHECK, str(tiny_model_dir), here, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert out.returncode == 0 and "forked ok" in out.stdout, out.stderr[-3000:]


def test_chunks_in_threads_equal_one_serial_pass(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other_thread: None
) -> None:
    assert not chunks.can_fork()
    monkeypatch.setattr(chunks, "CHUNK", 4)
    ctx, examples = _ctx(tokenizer, tmp_path), _examples()
    got = _flat(list(chunks.all_chunk_stats(examples, ctx, batched=True)))
    assert got == _serial(examples, ctx)


def _fails() -> list[int]:
    raise ValueError("row 3: no such column")


def test_beside_returns_and_raises_in_a_thread(other_thread: None) -> None:
    job = Beside(lambda: [1, 2, 3])
    assert not job.in_process and job.result() == [1, 2, 3]
    with pytest.raises(ValueError, match="row 3"):
        Beside(_fails).result()


def test_normalised_words_are_the_normalised_text_split() -> None:
    for text in ("Hello, World!  again", "Ünïcode — text, ÄÖ", "", "a_b-c"):
        norm, words = normalised_words(text)
        assert norm == normalise(text) and words == norm.split()
