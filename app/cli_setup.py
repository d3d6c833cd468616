"""``tunedeck setup-training``: the "Set up local training" dialog without a screen."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from app.core.trainer_env import (
    SetupError,
    TrainerEnvSetup,
    choose_torch,
    make_plan,
    record_environment,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USER_ERROR = 2


def cmd_setup_training(args: argparse.Namespace, console: Console) -> int:
    torch = choose_torch(args.torch)
    if args.torch_index is not None:
        torch = type(torch)(torch.build, args.torch_index or None, torch.reason + "; index given")
    try:
        plan = make_plan(
            env_dir=args.env,
            torch=torch,
            tool=args.tool,
            base_python=args.base_python,
            constraints=args.constraints,
        )
    except SetupError as err:
        console.print(f"error: {err}", markup=False)
        if err.hint:
            console.print(f"hint: {err.hint}", markup=False)
        return EXIT_USER_ERROR
    console.print(plan.describe(), markup=False, highlight=False)
    if args.dry_run:
        for step in plan.steps():
            console.print(f"{step.title}: {' '.join(step.argv)}", markup=False, highlight=False)
        return EXIT_OK

    def on_line(line: str) -> None:
        if args.verbose or line.startswith(("[", "---")):
            console.print(line, markup=False, highlight=False)

    setup = TrainerEnvSetup(plan, on_line=on_line)
    try:
        result = setup.run()
    except KeyboardInterrupt:
        setup.cancel()
        console.print("cancelled", markup=False)
        return EXIT_FAILED
    if not result.ok:
        console.print(f"error: {result.message}", markup=False)
        console.print(f"the whole log: {result.log_path}", markup=False)
        return EXIT_FAILED
    saved = record_environment(result.python)
    console.print(f"local training will use {result.python} (saved in {saved})", markup=False)
    return EXIT_OK


def add_commands(sub: Any) -> dict[str, Callable[[argparse.Namespace, Console], int]]:
    p = sub.add_parser(
        "setup-training",
        help="create (or repair) the Python environment local training runs in",
        description="Create a separate Python environment with torch and this version's "
        "trainer, and make local runs use it. Running it again over a broken environment "
        "repairs it (it starts from a cleared one).",
    )
    p.add_argument(
        "--torch",
        choices=("cuda", "cpu"),
        default=None,
        help="torch build (default: CUDA when an NVIDIA driver is found, else CPU)",
    )
    p.add_argument(
        "--torch-index", default=None, help="index URL for torch ('' = the default registry)"
    )
    p.add_argument(
        "--tool", choices=("uv", "venv"), default=None, help="default: uv when available"
    )
    p.add_argument("--env", type=Path, default=None, help="where (default: the data folder)")
    p.add_argument("--base-python", default=None, help="Python to build the environment from")
    p.add_argument("--constraints", type=Path, default=None, help="pip constraints file")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the commands only")
    p.add_argument("-v", "--verbose", action="store_true", help="show every line of the log")
    return {"setup-training": cmd_setup_training}
