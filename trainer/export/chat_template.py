"""A model folder's chat template, as transformers saved it, in the form other runtimes read."""

from __future__ import annotations

import json
import re
from pathlib import Path

# TRL's assistant-token markers: rendering ignores them, but llama.cpp's Jinja engine does not
# know the tag, so they are removed from templates written for other runtimes.
_GENERATION_TAGS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def read_chat_template(folder: Path) -> str | None:
    """``chat_template.jinja`` (transformers 5), else the one in ``tokenizer_config.json``."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def portable_template(template: str) -> str:
    """``template`` without ``{% generation %}`` / ``{% endgeneration %}`` markers."""
    return _GENERATION_TAGS.sub("", template)
