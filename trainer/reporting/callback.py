"""The TrainerCallback that turns training into metric points, health alerts and clean stops.

It only computes and enqueues: the event log append is a local file write and the network is
the sender threads' business.

- Metric points at each logging step and each evaluation (DESIGN.md §3 fields, plus the method's
  own figures, e.g. DPO ``rewards/margins`` or GRPO ``reward``, as extra fields).
- ``perplexity`` = exp(train loss) and ``eval_perplexity`` = exp(eval loss), for language-model
  losses only (sft, cpt); the preference and RL methods' losses are not log-likelihoods.
- Health: a non-finite training loss stops the run at the end of that step *without* saving that
  state (the last good checkpoint stays the newest); ``loss_spike`` when a logged loss exceeds
  ``logging.loss_spike_factor`` times the median of the previous ten.
- Run control: at the end of every optimiser step it asks RunControl whether to stop (signal,
  max_runtime); if so it saves a checkpoint at this step and stops. In a multi-process run the
  decision is all-reduced, so every rank stops at the same step (otherwise DDP would hang).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from trainer.events import finite_or_none
from trainer.reporting import gpu_stats
from trainer.reporting.throughput import ThroughputMeter

if TYPE_CHECKING:
    from trainer.reporting.session import ReportingSession

LM_LOSS_METHODS = frozenset({"sft", "cpt"})
STOP_CODES = {None: 0, "cancelled": 1, "timeout": 2, "loss_nan": 3}
SPIKE_WINDOW = 10
SPIKE_MIN_HISTORY = 3
# Keys of the trainers' logs that are mapped to contract fields or are not per-interval figures.
_MAPPED = {"loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "num_input_tokens_seen"}
_SUMMARY_KEY = "train_runtime"  # only in the summary log train() writes at its very end


def _exp(loss: float) -> float | None:
    try:
        return math.exp(loss) if math.isfinite(loss) else None
    except OverflowError:
        return None


def _number(value: Any) -> float | int | bool | None:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return finite_or_none(value)  # type: ignore[no-any-return]
    item = getattr(value, "item", None)  # a 0-d tensor or numpy scalar slipped into the logs
    if callable(item):
        try:
            return _number(item())
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


class ReportingCallback(TrainerCallback):
    def __init__(self, session: ReportingSession) -> None:
        self.session = session
        self.meter = ThroughputMeter()
        self.nonfinite_loss_step: int | None = None
        self.last_train_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.average_train_loss: float | None = None
        self._losses: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self._last_was_spike = False
        self._last_hook = time.monotonic()
        self._last_num_tokens: float | None = None
        self._started = False

    # -- hooks from the session --------------------------------------------------------------

    def observe_loss(self, loss: Any, step: int) -> None:
        """Called by the wrapped training_step with each micro-batch's loss."""
        if self.nonfinite_loss_step is not None:
            return
        try:
            # one sync, like the trainer's own NaN check that follows; .item() is the cheapest
            value = float(loss.item() if hasattr(loss, "item") and loss.numel() == 1 else loss)
            finite = math.isfinite(value)
        except (TypeError, ValueError, RuntimeError, AttributeError):
            import torch

            finite = bool(torch.isfinite(loss).all())
        if not finite:
            self.nonfinite_loss_step = step + 1  # the optimiser step being taken

    # -- TrainerCallback ---------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.meter.restart()
        self._last_hook = time.monotonic()
        self._last_num_tokens = None
        if not self._started:
            self._started = True
            self.session.training_started(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._last_hook = time.monotonic()
        reason = "loss_nan" if self.nonfinite_loss_step is not None else None
        reason = reason or self.session.control.stop_reason()
        reason = _agree_across_ranks(reason, args)
        if reason is None:
            return control
        control.should_training_stop = True
        control.should_evaluate = False
        # A NaN state must not become the newest checkpoint; any other stop saves this step.
        control.should_save = reason != "loss_nan"
        self.session.training_stopped(reason, state)
        return control

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.session.stop_reason is not None:
            # The stop step's checkpoint is already written (or, for NaN, must not be).
            control.should_save = False
            control.should_evaluate = False
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        self.meter.exclude(now - self._last_hook)
        self._last_hook = now
        self.session.checkpoint_saved(state)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        self.meter.exclude(now - self._last_hook)
        self._last_hook = now

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        logs = logs or {}
        if _SUMMARY_KEY in logs:
            average = _number(logs.get("train_loss"))
            self.average_train_loss = None if average is None else float(average)
            return
        if not state.is_world_process_zero and not _is_distributed():
            return
        now = time.monotonic()
        if any(k.startswith("eval_") for k in logs):
            self.meter.exclude(now - self._last_hook)  # the evaluation that produced these
            self._last_hook = now
            point = self._eval_point(state, logs)
        else:
            self._last_hook = now
            point = self._train_point(args, state, logs)
        if point is not None and state.is_world_process_zero:
            self.session.reporter.metric(point)

    # -- points ------------------------------------------------------------------------------

    def _common(self, state: Any, logs: dict[str, Any]) -> dict[str, Any]:
        point: dict[str, Any] = {"step": int(state.global_step)}
        epoch = _number(logs.get("epoch", state.epoch))
        if epoch is not None:
            point["epoch"] = float(epoch)
        return point

    def _extras(self, logs: dict[str, Any], point: dict[str, Any]) -> None:
        for key, value in logs.items():
            if key in _MAPPED or key in point:
                continue
            number = _number(value)
            if number is not None:
                point[key] = number

    def _train_point(self, args: Any, state: Any, logs: dict[str, Any]) -> dict[str, Any] | None:
        seconds, samples, local_tokens = self.meter.take()
        gpu = gpu_stats.local_gpu_stats()
        totals = _sum_across_ranks([samples, local_tokens or 0.0, *_gpu_vector(gpu)], args)
        tokens = totals[1] if local_tokens is not None else None
        if tokens is None and _number(logs.get("num_tokens")) is not None:
            # list batches (GRPO): the trainer counts tokens itself, cumulatively and already
            # summed over processes
            now_tokens = float(logs["num_tokens"])
            if self._last_num_tokens is not None:
                tokens = max(0.0, now_tokens - self._last_num_tokens)
            self._last_num_tokens = now_tokens
        if not state.is_world_process_zero:
            return None
        samples = totals[0]
        point = self._common(state, logs)
        loss = _number(logs.get("loss"))
        if loss is not None:
            point["train_loss"] = float(loss)
            self.last_train_loss = float(loss)
            if self.session.cfg.method in LM_LOSS_METHODS:
                point["perplexity"] = _exp(float(loss))
        for src, dst in (("learning_rate", "learning_rate"), ("grad_norm", "grad_norm")):
            value = _number(logs.get(src))
            if value is not None:
                point[dst] = float(value)
        if samples > 0:
            point["samples_per_second"] = round(samples / seconds, 4)
        if tokens is not None and tokens > 0:
            point["tokens_per_second"] = round(tokens / seconds, 2)
        point.update(gpu_stats.metric_fields(_gpu_dict(totals[2:])))
        self._extras(logs, point)
        if loss is not None:
            self._check_spike(float(loss), state)
        return point

    def _eval_point(self, state: Any, logs: dict[str, Any]) -> dict[str, Any] | None:
        if not state.is_world_process_zero:
            return None
        point = self._common(state, logs)
        eval_loss = _number(logs.get("eval_loss"))
        if eval_loss is not None:
            point["eval_loss"] = float(eval_loss)
            self.last_eval_loss = float(eval_loss)
            if self.session.cfg.method in LM_LOSS_METHODS:
                point["eval_perplexity"] = _exp(float(eval_loss))
        self._extras(logs, point)
        return point

    # -- health ------------------------------------------------------------------------------

    def _check_spike(self, loss: float, state: Any) -> None:
        factor = self.session.cfg.logging.loss_spike_factor
        history = list(self._losses)
        self._losses.append(loss)
        if len(history) < SPIKE_MIN_HISTORY:
            return
        # the median, so that one spike does not raise the bar for the next
        typical = statistics.median(history)
        spike = typical > 0 and loss > factor * typical
        if spike and not self._last_was_spike:
            self.session.alert(
                "loss_spike",
                loss=loss,
                current_step=int(state.global_step),
                total_steps=int(state.max_steps) or None,
                message=f"training loss {loss:.4g} at step {state.global_step} is "
                f"{loss / typical:.1f}x its recent median {typical:.4g}",
            )
        self._last_was_spike = spike


# -- multi-process helpers ---------------------------------------------------------------------


def _is_distributed() -> bool:
    try:
        import torch.distributed as dist

        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    except Exception:
        return False


def _agree_across_ranks(reason: str | None, args: Any) -> str | None:
    """The most severe stop reason of any rank, so that all ranks stop at the same step."""
    if not _is_distributed():
        return reason
    import torch
    import torch.distributed as dist

    code = torch.tensor([STOP_CODES[reason]], dtype=torch.int64, device=args.device)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    by_code = {v: k for k, v in STOP_CODES.items()}
    return by_code[int(code.item())]


def _sum_across_ranks(values: list[float], args: Any) -> list[float]:
    if not _is_distributed():
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=args.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.tolist()]


_GPU_KEYS = ("allocated", "reserved", "devices", "util_sum", "util_count")


def _gpu_vector(stats: dict[str, float]) -> list[float]:
    return [float(stats.get(k, 0.0)) for k in _GPU_KEYS]


def _gpu_dict(values: list[float]) -> dict[str, float]:
    return dict(zip(_GPU_KEYS, values, strict=True))
