"""How the pod agent travels to a pod: in the create request's ``env`` and ``args``.

RunPod's published schema (tests/data/runpod-rest-v2-openapi.json, CreatePodRequest =
ContainerConfig + pod fields) offers ``image``, ``env`` (an object of strings), ``ports`` and
``args``: one *string*, "arguments passed to the container entrypoint". There is no separate
entrypoint or ``dockerStartCmd`` field in REST v2. RunPod's PyTorch images start ``/start.sh``
(nginx, sshd, Jupyter) as their default command, and RunPod's own documented start command,
``bash -c '/start.sh'``, shows that this string is split like a shell line and replaces that
command; where an image has an entrypoint wrapper (NVIDIA's ``nvidia_entrypoint.sh``), it runs
the command it is given (``exec "$@"``). So ``args`` carries a short, fixed command line and the
agent itself rides in the environment:

- ``TUNEDECK_AGENT_SRC``: pod_agent.py, zlib-compressed and base64-encoded (about 13 KB; one
  variable may hold 128 KiB on Linux), so no network download and nothing to pin on the pod;
- ``args``: ``python3 -c "<decode and exec TUNEDECK_AGENT_SRC>"``. The code holds no ``$``,
  backquote, backslash or double quote, so it reads the same whether the string is split by a
  shell (``sh -c``, as the fake RunPod does) or by shell-like quoting rules.

The pod's own services from ``/start.sh`` are not started: the agent is all the pod runs, and
nothing but its one port is exposed. RunPod adds its own variables (RUNPOD_POD_ID, the pod-scoped
RUNPOD_API_KEY, ...); a pod takes at most 50, and this module's stay far below that. Secrets the
trainer needs (job token, Hugging Face token) are not put here, where the pod's definition shows
them: the app hands them to the agent in ``POST /start``.
"""

from __future__ import annotations

import base64
import importlib.resources
import shlex
import zlib

from trainer.config.runpod_section import DEFAULT_RUNPOD_IMAGE

# The run config's default (runpod.image): RunPod's official PyTorch image with torch 2.8, the
# trainer's torch major version (its bundle asks for torch>=2,<3, so the image's CUDA build stays).
DEFAULT_IMAGE = DEFAULT_RUNPOD_IMAGE
DEFAULT_AGENT_PORT = 8765
POD_ENV_LIMIT = 50
# RunPod sets these itself inside every pod (NOTES.md); counted against the limit to be safe.
RUNPOD_SET_VARIABLES = 10
MAX_ENV_VALUE_BYTES = 128 * 1024 - 64  # Linux's limit for one "NAME=value" string
SOURCE_VARIABLE = "TUNEDECK_AGENT_SRC"
BOOTSTRAP_CODE = (
    "import base64,os,zlib;"
    "exec(compile(zlib.decompress(base64.b64decode(os.environ['TUNEDECK_AGENT_SRC'])),"
    "'pod_agent.py','exec'))"
)


def agent_source() -> str:
    return (importlib.resources.files("app.core.runpod") / "pod_agent.py").read_text("utf-8")


def packed_agent() -> str:
    """pod_agent.py as one environment value: zlib (level 9), then base64."""
    return base64.b64encode(zlib.compress(agent_source().encode("utf-8"), 9)).decode("ascii")


def agent_start(
    token: str,
    *,
    port: int = DEFAULT_AGENT_PORT,
    grace_s: float,
    idle_cap_s: float,
    python: str = "python3",
) -> tuple[str, dict[str, str]]:
    """The create request's ``args`` and ``env`` that make a pod run the agent.

    ``grace_s``: how long a finished run may wait for the app to collect it before the pod
    deletes itself; ``idle_cap_s``: how long the pod may go without hearing from the app while
    nothing trains. ``python``: the pod image's interpreter (tests pass their own).
    """
    if len(token) < 16:
        raise ValueError("the agent token must be a random string of at least 16 characters")
    env = {
        SOURCE_VARIABLE: packed_agent(),
        "TUNEDECK_AGENT_TOKEN": token,
        "TUNEDECK_AGENT_PORT": str(port),
        "TUNEDECK_AGENT_GRACE_S": f"{grace_s:g}",
        "TUNEDECK_AGENT_IDLE_CAP_S": f"{idle_cap_s:g}",
    }
    check_pod_env(env)
    return f'{shlex.quote(python)} -c "{BOOTSTRAP_CODE}"', env


def check_pod_env(env: dict[str, str]) -> None:
    """Raise ValueError when a pod's env would break RunPod's limits (count, value size)."""
    if len(env) + RUNPOD_SET_VARIABLES > POD_ENV_LIMIT:
        raise ValueError(
            f"a pod takes at most {POD_ENV_LIMIT} environment variables, RunPod's own included "
            f"(about {RUNPOD_SET_VARIABLES}); this request has {len(env)}"
        )
    for name, value in env.items():
        if len(name) + 1 + len(value.encode("utf-8")) > MAX_ENV_VALUE_BYTES:
            raise ValueError(f"environment variable {name} is too long for a pod")
