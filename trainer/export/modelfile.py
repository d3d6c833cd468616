"""An Ollama Modelfile for an exported GGUF: ``ollama create NAME -f Modelfile``.

Ollama does not run Jinja, so the model's chat template is translated to Ollama's Go template.
Supported: ChatML-style templates (``<|im_start|>role ... <|im_end|>``, as the demo model, SmolLM2
and Qwen use), including a default system prompt the template inserts when a conversation has
none (it becomes the Modelfile's ``SYSTEM``). Any other template is left out with a comment
saying so; Ollama then falls back to the template it recognises from the GGUF's metadata, if any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MODELFILE = "Modelfile"
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"

# Go template: every message in order (Ollama puts the SYSTEM line first when the conversation
# has no system message), then the assistant's turn, which is what add_generation_prompt does.
CHATML_GO_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system\\?\n(.+?)<\|im_end\|>", re.DOTALL)


@dataclass(frozen=True)
class OllamaTemplate:
    template: str | None
    system: str | None
    stop: tuple[str, ...]
    note: str


def is_chatml(jinja: str) -> bool:
    return CHATML_START in jinja and CHATML_END in jinja


def translate(jinja: str | None) -> OllamaTemplate:
    """The Go template (or None) for a Jinja chat template, and a note on what was done."""
    if not jinja:
        return OllamaTemplate(None, None, (), "the model has no chat template; none written")
    if not is_chatml(jinja):
        return OllamaTemplate(
            None,
            None,
            (),
            "the chat template is not ChatML-style, which is the only kind translated to "
            "Ollama's Go template; Ollama will use the template it recognises from the GGUF",
        )
    found = _DEFAULT_SYSTEM.search(jinja)
    system = None
    # a system turn written out literally in the template (not the message loop's) is a default
    if found and "message" not in found.group(1) and "+" not in found.group(1):
        system = found.group(1).replace("\\n", "\n")
    return OllamaTemplate(
        CHATML_GO_TEMPLATE, system, (CHATML_END,), "ChatML template translated for Ollama"
    )


def _quoted(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile_text(gguf_name: str, jinja: str | None, title: str) -> tuple[str, str]:
    """(Modelfile text, note on the template) for the GGUF file ``gguf_name`` beside it."""
    chat = translate(jinja)
    lines = [f"# {title}: written by Tunedeck. {chat.note}.", f"FROM ./{gguf_name}"]
    if chat.template is not None:
        lines.append(f"TEMPLATE {_quoted(chat.template)}")
    if chat.system is not None:
        lines.append(f"SYSTEM {_quoted(chat.system)}")
    lines.extend(f'PARAMETER stop "{stop}"' for stop in chat.stop)
    return "\n".join(lines) + "\n", chat.note


def write_modelfile(folder: Path, gguf_name: str, jinja: str | None, title: str) -> Path:
    text, _ = modelfile_text(gguf_name, jinja, title)
    path = folder / MODELFILE
    path.write_text(text, encoding="utf-8")
    return path
