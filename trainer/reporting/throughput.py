"""True samples/s and tokens/s: counted from the batches the trainer actually trains on.

The session wraps ``trainer.training_step`` (called once per micro-batch with the collated
inputs). Counting never forces a GPU sync: sample counts come from tensor shapes, token counts are
summed as tensors on the device and read once per logging step, where the trainer syncs anyway.

- samples: rows of the batch. Paired-preference collators (DPO, reward models) stack chosen and
  rejected rows, so a pair counts once; padding-free packing flattens a batch into one row, so
  sequences are counted by their ``position_ids`` starts; a list batch (GRPO/RLOO, generation
  happens inside the step) counts its rows (one completion each).
- tokens: non-padding tokens (``*attention_mask`` sums; a separate prompt mask is left out where
  the chosen/rejected sequences already hold the prompt), or every ``*input_ids`` token where
  there is no mask (padding-free batches hold no padding). For list batches the count comes from the
  trainer's own ``num_tokens`` log entry instead.
- time: wall time between logging steps minus evaluation and checkpoint saving.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

# Trainers whose collators stack chosen+rejected rows into one input_ids tensor.
PAIRED_TRAINERS = ("DPOTrainer", "RewardTrainer")


def is_paired_trainer(trainer: Any) -> bool:
    return any(cls.__name__ in PAIRED_TRAINERS for cls in type(trainer).__mro__)


class ThroughputMeter:
    def __init__(self, *, paired: bool = False) -> None:
        self.paired = paired
        self.samples: Any = 0  # int or a 0-d tensor
        self.tokens: Any = 0
        self.tokens_known = True
        self._interval_start = time.monotonic()
        self._excluded = 0.0

    # -- counting ----------------------------------------------------------------------------

    def count(self, inputs: Any) -> None:
        if isinstance(inputs, Mapping):
            self.samples = self.samples + self._rows(inputs)
            tokens = self._tokens(inputs)
            if tokens is None:
                self.tokens_known = False
            else:
                self.tokens = self.tokens + tokens
        elif isinstance(inputs, list | tuple):
            self.samples += len(inputs)
            self.tokens_known = False

    def _rows(self, inputs: Mapping[str, Any]) -> Any:
        for key in ("label", "chosen_input_ids", "prompt_input_ids", "input_ids"):
            value = inputs.get(key)
            shape = getattr(value, "shape", None)
            if not shape:
                continue
            rows = int(shape[0])
            if key == "input_ids":
                position_ids = inputs.get("position_ids")
                if rows == 1 and position_ids is not None and "attention_mask" not in inputs:
                    return (position_ids == 0).sum()  # padding-free packed batch
                if self.paired:
                    return rows // 2
            return rows
        return 0

    @staticmethod
    def _tokens(inputs: Mapping[str, Any]) -> Any:
        masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and hasattr(v, "sum")]
        if "chosen_attention_mask" in inputs and "prompt_attention_mask" in inputs:
            # ORPO-style batches: the chosen and rejected sequences already hold the prompt
            masks = [
                v
                for k, v in inputs.items()
                if k.endswith("attention_mask") and not k.startswith("prompt_")
            ]
        if masks:
            total: Any = 0
            for m in masks:
                total = total + m.sum()
            return total
        ids = [v for k, v in inputs.items() if k.endswith("input_ids") and hasattr(v, "numel")]
        if ids:
            return sum(int(v.numel()) for v in ids)
        return None

    # -- time --------------------------------------------------------------------------------

    def exclude(self, seconds: float) -> None:
        """Time inside the interval that was not training (evaluation, saving)."""
        self._excluded += max(0.0, seconds)

    def take(self) -> tuple[float, float, float | None]:
        """(seconds of training, samples, tokens or None) since the last take; resets."""
        now = time.monotonic()
        seconds = max(1e-9, now - self._interval_start - self._excluded)
        samples = float(self.samples)
        tokens = float(self.tokens) if self.tokens_known else None
        self.samples, self.tokens, self.tokens_known = 0, 0, True
        self._interval_start, self._excluded = now, 0.0
        return seconds, samples, tokens

    def restart(self) -> None:
        self.samples, self.tokens, self.tokens_known = 0, 0, True
        self._interval_start, self._excluded = time.monotonic(), 0.0
