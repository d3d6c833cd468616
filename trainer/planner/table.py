"""The plan as text (the one table both command lines print) and as JSON."""

from __future__ import annotations

from typing import Any

from trainer.planner.memory import GIB, PART_TITLES, RUNTIME_RESERVE_BYTES
from trainer.planner.plan import GpuFit, Plan


def _gb(value: float) -> str:
    return f"{value / GIB:.2f} GB"


def format_hours(hours: float | None) -> str:
    if hours is None:
        return "?"
    if hours < 1 / 60:
        return "<1 min"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h"


def format_money(cost: float | None) -> str:
    if cost is None:
        return "?"
    return "<$0.01" if 0 < cost < 0.005 else f"${cost:,.2f}"


def _gpu_row(fit: GpuFit) -> str:
    gpu = fit.gpu
    name = f"{gpu.name}{' x' + str(gpu.count) if gpu.count > 1 else ''}"
    name += " (this computer)" if gpu.local else ""
    price = "" if gpu.price_per_hour is None else f"${gpu.price_per_hour:.2f}/h"
    mark = "fits" if fit.fits else "too small"
    return (
        f"  {name:<46} {gpu.memory_gb:>6.0f} GB  {mark:<9}  {format_hours(fit.hours):>8}  "
        f"{format_money(fit.cost):>10}  {price}"
    )


def format_plan(plan: Plan) -> str:
    """The plan as a fixed-width table for a terminal."""
    est = plan.estimate
    lines = [
        f"Model: {plan.model} — {plan.num_parameters / 1e6:,.1f}M parameters "
        f"({plan.shapes_source})",
        f"Weights {est.weights_dtype}, precision {est.precision}; "
        f"{est.sequences} sequences x {est.seq_len} tokens per micro-batch",
        "",
        "Peak GPU memory",
    ]
    for part in est.parts:
        if part.bytes == 0 and part.key in ("extra_models", "generation_cache") and not part.detail:
            continue
        title = PART_TITLES[part.key]
        lines.append(f"  {title:<22} {_gb(part.bytes):>11}  {part.detail}")
    lines.append(f"  {'Total (allocated)':<22} {_gb(est.peak_bytes):>11}")
    lines.append(
        f"  {'+ CUDA context, slack':<22} {_gb(RUNTIME_RESERVE_BYTES):>11}  "
        "(what nvidia-smi shows on top)"
    )
    if plan.tokens is not None and plan.trained_tokens is not None:
        lines += [
            "",
            f"Dataset: {plan.tokens.rows:,} training rows, {plan.tokens.tokens:,} tokens "
            f"({plan.tokens.method}); {plan.trained_tokens:,.0f} tokens over the run",
        ]
    if plan.gpus:
        lines += ["", f"  {'GPU':<46} {'memory':>9}  {'':<9}  {'time':>8}  {'cost':>10}"]
        lines += [_gpu_row(f) for f in plan.gpus]
    if plan.target is not None:
        verdict = "fits" if plan.target.fits else "does NOT fit"
        lines += ["", f"On {plan.target.gpu.name}: {verdict}."]
    if plan.suggestions:
        lines.append("To make it fit, in order:")
        for i, s in enumerate(plan.suggestions, 1):
            lines.append(
                f"  {i}. {s.description}: {_gb(s.peak_bytes)}{' — fits' if s.fits else ''}"
            )
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON values (sizes in bytes, times in hours, money in USD)."""
    est = plan.estimate
    return {
        "model": plan.model,
        "shapes_source": plan.shapes_source,
        "num_parameters": plan.num_parameters,
        "weights_dtype": est.weights_dtype,
        "precision": est.precision,
        "seq_len": est.seq_len,
        "sequences": est.sequences,
        "memory": {p.key: p.bytes for p in est.parts},
        "memory_detail": {p.key: p.detail for p in est.parts},
        "peak_bytes": est.peak_bytes,
        "runtime_reserve_bytes": RUNTIME_RESERVE_BYTES,
        "dataset": None
        if plan.tokens is None
        else {
            "rows": plan.tokens.rows,
            "tokens": plan.tokens.tokens,
            "longest": plan.tokens.longest,
            "method": plan.tokens.method,
            "trained_tokens": plan.trained_tokens,
        },
        "gpus": [
            {
                "name": f.gpu.name,
                "memory_gb": f.gpu.memory_gb,
                "count": f.gpu.count,
                "local": f.gpu.local,
                "price_per_hour": f.gpu.price_per_hour,
                "fits": f.fits,
                "hours": f.hours,
                "cost_usd": f.cost,
            }
            for f in plan.gpus
        ],
        "target": None if plan.target is None else plan.target.gpu.name,
        "target_fits": plan.target_fits,
        "suggestions": [
            {"description": s.description, "peak_bytes": s.peak_bytes, "fits": s.fits}
            for s in plan.suggestions
        ],
        "notes": list(plan.notes),
    }
