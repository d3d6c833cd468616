"""``python -m trainer chat``: talk to a trained model (issue 12, DESIGN.md §8).

A long-lived verb: it loads the job's model once (base + adapter, a full fine-tune, a checkpoint,
or the base alone for comparison), then answers JSON-line requests on stdin with JSON-line events
on stdout, streaming tokens as they are generated. The prompt is rendered with the tokenizer and
chat template the run trained with, tokenised the way TRL's SFT tokenised its prompts.

- protocol.py    the requests and their limits (light: no torch)
- loading.py     which model a job left, whether it fits, loading it
- generation.py  prompt rendering and the streaming, stoppable token loop
- rows.py        the run's held-out (or training) rows with their reference answers
- cli.py         the verb: stdin reader thread, request loop, events
"""

from __future__ import annotations


class ChatError(Exception):
    """An expected problem (no model in the folder, it does not fit, a bad request): a message
    and what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()
