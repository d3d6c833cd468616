"""The Hub model card (README.md) of an exported or pushed model, and the facts it states.

Everything comes from files the run left and its config: the base model and its license, the
method, the dataset's name and content hash (sha256 of the file), the whole config (secret-looking
keys redacted), final and best metrics from ``events.jsonl`` / ``run_summary.json``, the loss chart
and how to load the result.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import RunConfig
from trainer.export.loss_chart import render_loss_chart

CARD_FILE = "README.md"
CHART_FILE = "loss.png"
SUMMARY_FILE = "run_summary.json"
EVENTS_FILE = "events.jsonl"
_SECRET_KEY = re.compile(r"token|secret|password|api_key|apikey", re.IGNORECASE)
# built-in models have no README to read a license from; these are known
BUILTIN_LICENSES = {"builtin:smollm2-135m-instruct": "apache-2.0"}


@dataclass
class RunMetrics:
    train: list[tuple[float, float]] = field(default_factory=list)  # (step, train_loss)
    evaluation: list[tuple[float, float]] = field(default_factory=list)  # (step, eval_loss)
    final: dict[str, float] = field(default_factory=dict)  # last value of each metric
    steps: int | None = None

    def best_eval(self) -> tuple[float, float] | None:
        return min(self.evaluation, key=lambda p: p[1]) if self.evaluation else None


@dataclass(frozen=True)
class DatasetFacts:
    name: str
    sha256: str | None  # None: not a local file (a Hub id or URL), so not hashed here


def read_metrics(run_dir: Path) -> RunMetrics:
    """Loss curves and the final value of each logged metric, for this run's job only."""
    from trainer.reporting.event_log import iter_events

    metrics = RunMetrics()
    summary = _json_object(run_dir / SUMMARY_FILE)
    job_id = summary.get("execution_id")
    steps = summary.get("global_step")
    metrics.steps = steps if isinstance(steps, int) else None
    for event in iter_events(run_dir / EVENTS_FILE, job_id=job_id):
        data = event.get("data") or {}
        if event.get("kind") != "metric" or not isinstance(data, dict):
            continue
        numbers = {k: float(v) for k, v in data.items() if _is_number(v)}
        for key, value in numbers.items():
            if key not in ("step", "epoch"):
                metrics.final[key] = value
        step = numbers.get("step")
        if step is not None and "train_loss" in numbers:
            metrics.train.append((step, numbers["train_loss"]))
        if step is not None and "eval_loss" in numbers:
            metrics.evaluation.append((step, numbers["eval_loss"]))
    if metrics.steps is None and metrics.train:
        metrics.steps = int(metrics.train[-1][0])
    return metrics


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def dataset_facts(cfg: RunConfig, base_dir: Path) -> DatasetFacts:
    """The dataset's name as the config gives it and, for a local file, its sha256."""
    from trainer.run import resolve_paths

    path = Path(resolve_paths(cfg, base_dir).dataset.path)
    if not path.is_file():
        return DatasetFacts(cfg.dataset.path, None)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return DatasetFacts(cfg.dataset.path, digest.hexdigest())


def base_license(name: str, base_path: str | None) -> str | None:
    """The base model's license from its README front matter or config, when known."""
    if name in BUILTIN_LICENSES:
        return BUILTIN_LICENSES[name]
    folder = Path(base_path) if base_path else None
    if folder is None or not folder.is_dir():
        return None
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        front = re.match(r"---\n(.*?)\n---", text, re.DOTALL)
        found = re.search(r"^license:\s*(\S+)", front.group(1), re.MULTILINE) if front else None
        if found:
            return found.group(1).strip("'\"")
    value = _json_object(folder / "config.json").get("license")
    return value if isinstance(value, str) else None


def public_config(cfg: RunConfig) -> dict[str, Any]:
    """The whole run config as JSON, with any secret-looking key's value redacted."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: ("<redacted>" if _SECRET_KEY.search(k) and v else clean(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    result: dict[str, Any] = clean(cfg.model_dump(mode="json"))
    return result


def _metrics_table(metrics: RunMetrics) -> list[str]:
    if not metrics.final:
        return ["No metrics were recorded for this run."]
    best = metrics.best_eval()
    lines = ["| metric | final | best |", "|---|---|---|"]
    for key in sorted(metrics.final):
        best_cell = ""
        if key == "eval_loss" and best is not None:
            best_cell = f"{best[1]:.4f} (step {int(best[0])})"
        elif key == "train_loss" and metrics.train:
            low = min(metrics.train, key=lambda p: p[1])
            best_cell = f"{low[1]:.4f} (step {int(low[0])})"
        lines.append(f"| {key} | {metrics.final[key]:.4g} | {best_cell} |")
    return lines


def _how_to_load(repo_id: str, kind: str, base: str) -> list[str]:
    if kind == "adapter":
        return [
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base}")',
            f'model = PeftModel.from_pretrained(base, "{repo_id}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
            "```",
        ]
    return [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
        'messages = [{"role": "user", "content": "Hello!"}]',
        "inputs = tokenizer.apply_chat_template(",
        '    messages, add_generation_prompt=True, return_tensors="pt"',
        ")",
        "print(tokenizer.decode(model.generate(inputs, max_new_tokens=64)[0]))",
        "```",
    ]


def render_card(
    cfg: RunConfig,
    *,
    repo_id: str,
    kind: str,
    metrics: RunMetrics,
    dataset: DatasetFacts,
    license_id: str | None,
    chart: bool,
) -> str:
    """The README.md text; ``kind`` is what the repository holds: merged, adapter or model."""
    base = cfg.model.name_or_path
    front = ["---", f"base_model: {json.dumps(base)}"]
    front.append("library_name: " + ("peft" if kind == "adapter" else "transformers"))
    front.append(f"license: {license_id or 'other'}")
    front += ["tags:", "- tunedeck", f"- {cfg.method}", f"- {cfg.adapter.kind}", "---", ""]
    digest = f"sha256 `{dataset.sha256}`" if dataset.sha256 else "not a local file, not hashed"
    what = {
        "merged": "the LoRA adapter merged into its base (full weights, safetensors)",
        "adapter": "the adapter only (load it on top of the base model)",
        "model": "the fully fine-tuned model (safetensors)",
    }[kind]
    body = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"Fine-tuned from **{base}** with Tunedeck (method **{cfg.method}**, adapter "
        f"**{cfg.adapter.kind}**). This repository holds {what}.",
        "",
        "## Training data",
        "",
        f"- dataset: `{dataset.name}`",
        f"- content: {digest}",
        "",
        "## Results",
        "",
        f"Steps trained: {metrics.steps if metrics.steps is not None else 'unknown'}.",
        "",
        *_metrics_table(metrics),
        "",
    ]
    if chart:
        body += [
            f"![Loss: train in blue, eval in orange]({CHART_FILE})",
            "",
            "Loss by step: train in blue, eval in orange.",
            "",
        ]
    body += ["## How to load", "", *_how_to_load(repo_id, kind, base), ""]
    body += [
        "## License",
        "",
        f"The base model's license: {license_id or 'unknown (see the base model)'}.",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(public_config(cfg), indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(front + body)


def write_card(
    folder: Path,
    cfg: RunConfig,
    *,
    repo_id: str,
    kind: str,
    run_dir: Path,
    base_path: str | None,
    base_dir: Path,
) -> list[Path]:
    """Write README.md and loss.png (when there are losses) into ``folder``; return them."""
    metrics = read_metrics(run_dir)
    written = []
    chart = bool(metrics.train or metrics.evaluation)
    if chart:
        written.append(render_loss_chart(metrics.train, metrics.evaluation, folder / CHART_FILE))
    text = render_card(
        cfg,
        repo_id=repo_id,
        kind=kind,
        metrics=metrics,
        dataset=dataset_facts(cfg, base_dir),
        license_id=base_license(cfg.model.name_or_path, base_path),
        chart=chart,
    )
    card = folder / CARD_FILE
    card.write_text(text, encoding="utf-8")
    written.insert(0, card)
    return written
