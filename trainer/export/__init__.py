"""After a run: the model in the shapes people run it in.

- ``merge.py``: a LoRA adapter merged into its full-precision base, saved as safetensors with the
  tokenizer, chat template and generation config (also what ``adapter.merge_after_training``
  uses).
- ``gguf_writer.py``: a Hugging Face Llama-family folder written as one GGUF file (f16 or q8_0)
  with the ``gguf`` package's writer, tensor-name map and quantiser.
- ``modelfile.py``: an Ollama Modelfile next to the GGUF, the chat template translated to Go.
- ``model_card.py``: the Hub model card (README.md) and the loss chart PNG.
- ``hub.py``: the one Hub push (private by default), for ``output.push_to_hub`` and ``export``.
- ``progress.py``: the JSON-lines events the ``export`` verb prints for the GUI and CLI.
- ``cli.py``: ``python -m trainer export``.

Everything here runs in the trainer's environment; the app starts it as a subprocess.
"""

from __future__ import annotations


class ExportError(Exception):
    """An export a user can fix (missing files, an unsupported model, a folder in the way)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint
