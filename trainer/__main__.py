"""The trainer's command line (also installed as ``tunedeck-train``).

    python -m trainer --config C.json --execution-id ID [--num-processes N]
    python -m trainer schema                  # the run config's JSON Schema
    python -m trainer validate --config C.json  # config + dataset, no model loaded
    python -m trainer make-tiny-model DIR     # the built-in tiny model, written to DIR
    python -m trainer plan --config C.json [--json] [--gpus FILE] [--gpu NAME]
                                              # memory, time and cost before a run
    python -m trainer doctor --config C.json [--json] [--sample N]
                                              # what the model will learn from the dataset
    python -m trainer export --config C.json (--merged OUT | --gguf f16|q8_0 OUT | --hub REPO)
                                              # a finished job's model (JSON-lines progress)
    python -m trainer chat --config C.json [--run-dir D] [--checkpoint N | --base]
                                              # talk to a job's model (JSON lines on stdin/out)

Expected failures (a config or dataset a user can fix) print one line per problem on stderr and
exit 2; anything else is a bug and prints its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, json_schema, load_config

EXIT_OK, EXIT_BUG, EXIT_USER_ERROR = 0, 1, 2
SUBCOMMANDS = ("schema", "validate", "make-tiny-model", "plan", "doctor", "export", "chat")


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Fine-tune a model as a run config says. Subcommands: "
        + ", ".join(SUBCOMMANDS),
    )
    p.add_argument("--config", required=True, type=Path, help="run config JSON file")
    p.add_argument(
        "--execution-id",
        default=os.environ.get("JOB_ID") or "local",
        help="id of this execution, used in reports (default: $JOB_ID or 'local')",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        default=None,
        help="processes to train with (overrides runtime.num_processes)",
    )
    return p


def _sub_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m trainer {command}")
    if command == "validate":
        p.add_argument("--config", required=True, type=Path, help="run config JSON file")
    elif command == "make-tiny-model":
        p.add_argument("folder", type=Path, help="folder to write the model and tokenizer to")
    elif command == "plan":
        from trainer.planner.cli import add_plan_arguments

        add_plan_arguments(p)
    elif command == "doctor":
        from trainer.doctor.cli import add_doctor_arguments

        add_doctor_arguments(p)
    elif command == "export":
        from trainer.export.cli import add_export_arguments

        add_export_arguments(p)
    elif command == "chat":
        from trainer.chat.cli import add_chat_arguments

        add_chat_arguments(p)
    return p


def _print_problems(problems: list[str], source: str | None = None) -> None:
    where = f"{source}: " if source else ""
    for line in problems:
        print(f"error: {where}{line}", file=sys.stderr)


def _expected_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConfigError]
    try:
        from trainer.data.formats import DatasetError

        errors.append(DatasetError)
    except ImportError:  # the data package is optional for `schema`
        pass
    return tuple(errors)


def cmd_schema() -> int:
    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_make_tiny_model(folder: Path) -> int:
    from trainer.tiny_model import build_tiny_llama

    print(build_tiny_llama(folder))
    return EXIT_OK


def cmd_validate(config_path: Path) -> int:
    from trainer.validation import validate_run

    report = validate_run(load_config(config_path), base_dir=Path.cwd())
    print(report.text())
    if report.problems:
        _print_problems(report.problems)
        return EXIT_USER_ERROR
    return EXIT_OK


def cmd_train(config_path: Path, execution_id: str, num_processes: int | None) -> int:
    from trainer import launch

    cfg = load_config(config_path)
    processes = num_processes or cfg.runtime.num_processes
    if processes > 1 and not launch.inside_launch():
        command = launch.launch_command(
            config_path.resolve(),
            execution_id,
            processes,
            device=cfg.runtime.device,
            accelerate_config=cfg.runtime.accelerate_config,
        )
        return launch.relaunch(command)

    from trainer.run import run

    result = run(cfg, execution_id, base_dir=Path.cwd())
    if result.exit_code == EXIT_OK and result.stop_reason is None:
        print(f"done: {result.global_step} steps, saved to {result.output_dir}")
    return result.exit_code


def dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        command, ns = argv[0], _sub_parser(argv[0]).parse_args(argv[1:])
        if command == "schema":
            return cmd_schema()
        if command == "validate":
            return cmd_validate(ns.config)
        if command == "plan":
            from trainer.planner.cli import cmd_plan

            return cmd_plan(ns)
        if command == "doctor":
            from trainer.doctor.cli import cmd_doctor

            return cmd_doctor(ns)
        if command == "export":
            from trainer.export.cli import cmd_export

            return cmd_export(ns)
        if command == "chat":
            from trainer.chat.cli import cmd_chat

            return cmd_chat(ns)
        return cmd_make_tiny_model(ns.folder)
    ns = _train_parser().parse_args(argv)
    return cmd_train(ns.config, ns.execution_id, ns.num_processes)


def main(argv: list[str] | None = None) -> int:
    args: list[str] = sys.argv[1:] if argv is None else argv
    expected = _expected_errors()
    try:
        return dispatch(args)
    except expected as err:
        problems: list[Any] = getattr(err, "problems", None) or [str(err)]
        _print_problems([str(p) for p in problems], getattr(err, "source", None))
        hint = getattr(err, "hint", None)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from trainer.artifacts import HubPushError
        from trainer.reporting.disk_full import disk_full_note

        if isinstance(err, HubPushError):
            print(f"error: {err}", file=sys.stderr)
            return EXIT_BUG
        full_disk = disk_full_note(err)  # not a bug: one line, no traceback
        if full_disk:
            print(f"error: {full_disk}", file=sys.stderr)
            return EXIT_BUG
        traceback.print_exc()
        print(f"error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
