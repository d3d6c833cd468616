"""``python -m trainer export``: a finished job's model as a merged folder, a GGUF file with an
Ollama Modelfile, or a Hub repository (with a model card).

    python -m trainer export --config C.json [--run-dir DIR] [--checkpoint N]
        (--merged OUT | --gguf f16|q8_0 OUT | --hub OWNER/NAME [--public] [--adapter-only])
        [--force]

Progress goes to stdout as JSON lines (see progress.py). The result is built in a sibling
``OUT.partial-PID`` folder and moved into OUT at the end, so a cancelled or failed export leaves
nothing half-written in OUT; OUT must be missing or empty unless ``--force`` is given (then files
of the same name in it are replaced, others are left alone).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, RunConfig, load_config
from trainer.export import ExportError
from trainer.export.progress import Progress, stdout_progress

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR, EXIT_CANCELLED = 0, 1, 2, 130
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="the job's run config JSON")
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="the job's output folder (default: output.output_dir of the config)",
    )
    p.add_argument("--checkpoint", type=int, default=None, help="export checkpoint-N instead")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--merged", type=Path, metavar="OUT", help="merged safetensors into OUT")
    kind.add_argument(
        "--gguf",
        nargs=2,
        metavar=("TYPE", "OUT"),
        help="GGUF (TYPE f16 or q8_0) and an Ollama Modelfile into OUT",
    )
    kind.add_argument("--hub", metavar="REPO", help="push to the Hugging Face Hub as owner/name")
    p.add_argument("--public", action="store_true", help="create the Hub repository as public")
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="push the adapter rather than the merged model (LoRA jobs)",
    )
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default="auto",
        help="weights of the merged model (auto: the base model's own float type)",
    )
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGBREAK on Windows), the GUI's Cancel, unwinds like Ctrl-C so that the
    partial folder is removed on the way out."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signals = [signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])
    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def check_destination(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder", "choose a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(
            f"{out}: the folder is not empty; nothing was written",
            "choose an empty or new folder, or pass --force to replace files of the same name",
        )


def _publish(staging: Path, out: Path) -> list[Path]:
    """Move the finished files from ``staging`` into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    moved = []
    for item in sorted(staging.iterdir()):
        target = out / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
        moved.append(target)
    return moved


def _files_report(paths: list[Path]) -> list[dict[str, Any]]:
    report = []
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        report += [{"name": str(p), "bytes": p.stat().st_size} for p in files]
    return report


def _trained(cfg: RunConfig, ns: argparse.Namespace) -> Any:
    from trainer.export.merge import is_adapter_folder, trained_model
    from trainer.modeling import resolve_model_path

    run_dir = ns.run_dir or cfg.resolved_output_dir(Path.cwd())
    folder = run_dir / f"checkpoint-{ns.checkpoint}" if ns.checkpoint is not None else run_dir
    base = cfg.model.name_or_path
    if is_adapter_folder(folder):
        base = resolve_model_path(base, Path.cwd())
    return run_dir, trained_model(
        folder,
        base,
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
    )


def _export_merged(model: Any, staging: Path, ns: argparse.Namespace, progress: Progress) -> None:
    from trainer.export.merge import save_merged

    save_merged(model, staging, dtype=ns.dtype, progress=progress)


def _export_gguf(
    cfg: RunConfig, model: Any, staging: Path, ns: argparse.Namespace, progress: Progress
) -> None:
    from trainer.export.chat_template import read_chat_template
    from trainer.export.gguf_writer import check_supported, gguf_file_name, write_gguf
    from trainer.export.merge import save_merged
    from trainer.export.modelfile import modelfile_text

    gguf_type = ns.gguf[0]
    # beside the staging folder and named after it, so that one glob finds both if the
    # process is killed before it can clean up (app.core.model_export.remove_partials)
    with tempfile.TemporaryDirectory(prefix=f"{staging.name}-merged-", dir=staging.parent) as tmp:
        source = model.folder
        if model.is_adapter:
            source = save_merged(model, Path(tmp), dtype=ns.dtype, progress=progress)
        check_supported(source)
        name = gguf_file_name(_slug(cfg.name), gguf_type)
        write_gguf(source, staging / name, gguf_type, progress=progress)
        text, note = modelfile_text(name, read_chat_template(source), cfg.name)
        (staging / "Modelfile").write_text(text, encoding="utf-8")
        progress.emit("note", message=f"Modelfile: {note}")


def _export_hub(
    cfg: RunConfig,
    model: Any,
    run_dir: Path,
    staging: Path,
    ns: argparse.Namespace,
    progress: Progress,
) -> str:
    from trainer.export.hub import push_folder
    from trainer.export.merge import MODEL_FILE_PATTERNS, save_merged
    from trainer.export.model_card import write_card

    kind = "model"
    if model.is_adapter and ns.adapter_only:
        kind = "adapter"
        for pattern in (*ADAPTER_FILES, *MODEL_FILE_PATTERNS):
            for path in model.folder.glob(pattern):
                shutil.copy2(path, staging / path.name)
    else:
        kind = "merged" if model.is_adapter else "model"
        save_merged(model, staging, dtype=ns.dtype, progress=progress)
    write_card(
        staging,
        cfg,
        repo_id=ns.hub,
        kind=kind,
        run_dir=run_dir,
        base_path=model.base,
        base_dir=Path.cwd(),
    )
    return push_folder(
        staging,
        ns.hub,
        private=not ns.public,
        commit_message=f"Tunedeck export of {cfg.name} ({cfg.method}, {cfg.adapter.kind})",
        progress=progress,
    )


def run_export(ns: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Do the export ``ns`` asks for; return the ``done`` event's fields."""
    cfg = load_config(ns.config)
    if ns.hub is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", ns.hub):
        raise ExportError(f"--hub {ns.hub!r}: give the repository as owner/name")
    if ns.gguf is not None:
        from trainer.export.gguf_writer import GGUF_TYPES

        if ns.gguf[0] not in GGUF_TYPES:
            raise ExportError(f"--gguf {ns.gguf[0]!r}: choose one of {', '.join(GGUF_TYPES)}")
    out: Path | None = ns.merged or (Path(ns.gguf[1]) if ns.gguf else None)
    if out is not None:
        out = out.expanduser().resolve()
        check_destination(out, ns.force)
    run_dir, model = _trained(cfg, ns)
    parent = out.parent if out is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{out.name if out else 'hub'}.partial-", dir=parent))
    try:
        if ns.hub is not None:
            url = _export_hub(cfg, model, run_dir, staging, ns, progress)
            files = _files_report([staging])
            return {"kind": "hub", "repo": ns.hub, "url": url, "files": files}
        if ns.merged is not None:
            _export_merged(model, staging, ns, progress)
        else:
            _export_gguf(cfg, model, staging, ns, progress)
        assert out is not None
        files = _files_report(_publish(staging, out))
        kind = "merged" if ns.merged is not None else f"gguf-{ns.gguf[0]}"
        return {"kind": kind, "path": str(out), "files": files}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cmd_export(ns: argparse.Namespace) -> int:
    from trainer.export.hub import HubPushError

    progress = stdout_progress()
    try:
        with _terminate_as_interrupt():
            result = run_export(ns, progress)
    except (ExportError, ConfigError) as err:
        problems = getattr(err, "problems", None) or [str(err)]
        source = getattr(err, "source", None)
        where = f"{source}: " if source else ""
        message = "; ".join(f"{where}{p}" for p in problems)
        hint = getattr(err, "hint", "") or ""
        progress.emit("error", message=message, hint=hint)
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return EXIT_USER_ERROR
    except HubPushError as err:
        progress.emit("error", message=str(err), hint="check the token and the repository name")
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.emit("cancelled", message="export cancelled; nothing was written")
        print("error: export cancelled; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    total = sum(f["bytes"] for f in result["files"])
    progress.emit("done", bytes=total, **result)
    return EXIT_OK
