"""What a model is made of, without loading it: every tensor's name, shape and stored dtype, and
its config.json.

Sources, cheapest first:

- a local folder: the safetensors headers (``model.safetensors`` or the shards an
  ``model.safetensors.index.json`` names) read by hand — the format is 8 bytes of little-endian
  header length, then a JSON object ``{name: {"dtype", "shape", "data_offsets"}}``
  (https://huggingface.co/docs/safetensors/index, "Format");
- the Hugging Face Hub: ``huggingface_hub.get_safetensors_metadata`` (HTTP range requests for the
  headers only, no weights) and ``config.json``;
- a built-in model: its folder in the cache when it was built already, else shapes computed from
  its known config (the tiny Llama) or from the GGUF file's metadata (SmolLM2, read with the
  ``gguf`` package, numpy only) — never by building it, which needs torch.

Shapes that cannot be read (a folder of ``.bin`` files) are computed from config.json for the
Llama family (llama, mistral, qwen2, qwen3), whose layout is known.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.builtin_models import (
    BUILTIN_PREFIX,
    SMOLLM2,
    TINY_LLAMA,
    BuiltinModelMissing,
    smollm2_gguf_file,
)

# trainer.tiny_model.build_tiny_llama's config (vocab 512 from the BPE trainer, hidden 64, ...)
TINY_LLAMA_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}

# bytes per element of each safetensors / torch dtype name
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
}
HEADER_LIMIT = 100 * 2**20  # a safetensors header above 100 MB is not one (the format's own cap)


class ModelShapeError(Exception):
    """The model's shapes cannot be found; the message says where it looked and what to do."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # as stored ("BF16", "F32", ...)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ModelShapes:
    """A model's tensors and config; ``source`` says where they were read."""

    tensors: tuple[TensorSpec, ...]
    config: dict[str, Any]
    source: str
    notes: tuple[str, ...] = field(default=())

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors)

    def text_config(self) -> dict[str, Any]:
        """The language model's own config (multimodal configs nest it under text_config)."""
        nested = self.config.get("text_config")
        return nested if isinstance(nested, dict) else self.config

    def dim(self, key: str, default: int = 0) -> int:
        value = self.text_config().get(key, default)
        return int(value) if isinstance(value, int | float) and value else default

    @property
    def hidden_size(self) -> int:
        return self.dim("hidden_size") or self.dim("n_embd") or self.dim("d_model")

    @property
    def num_layers(self) -> int:
        return self.dim("num_hidden_layers") or self.dim("n_layer")

    @property
    def num_heads(self) -> int:
        return self.dim("num_attention_heads") or self.dim("n_head") or 1

    @property
    def head_dim(self) -> int:
        return self.dim("head_dim") or max(1, self.hidden_size // self.num_heads)

    @property
    def num_kv_heads(self) -> int:
        return self.dim("num_key_value_heads") or self.num_heads

    @property
    def intermediate_size(self) -> int:
        return self.dim("intermediate_size") or self.dim("n_inner") or 4 * self.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.dim("vocab_size")


# ----------------------------------------------------------------------------- safetensors


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file (no tensor data is read)."""
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ModelShapeError(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > HEADER_LIMIT:
            raise ModelShapeError(f"{path}: header length {length} is not a safetensors header")
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelShapeError(f"{path}: unreadable safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise ModelShapeError(f"{path}: the safetensors header is not a JSON object")
    return header


def tensors_from_header(header: dict[str, Any]) -> list[TensorSpec]:
    return [
        TensorSpec(name, tuple(int(d) for d in info["shape"]), str(info["dtype"]))
        for name, info in header.items()
        if name != "__metadata__" and isinstance(info, dict)
    ]


def _dedupe_tied(tensors: list[TensorSpec], config: dict[str, Any]) -> list[TensorSpec]:
    """A tied output layer is the input embedding: one parameter, counted once (as
    ``model.parameters()`` does)."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    if not isinstance(cfg, dict) or not cfg.get("tie_word_embeddings", False):
        return tensors
    has_embed = any(t.name.endswith("embed_tokens.weight") for t in tensors)
    return [t for t in tensors if not (has_embed and t.name.endswith("lm_head.weight"))]


def read_local_folder(folder: Path) -> ModelShapes:
    """Shapes from a folder holding config.json and safetensors weights (or config only: then
    computed for the Llama family)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelShapeError(f"{folder}: no config.json (give a model folder or a Hub id)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    index = folder / "model.safetensors.index.json"
    files: list[Path] = []
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = [folder / name for name in sorted(set(weight_map.values()))]
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    if files:
        tensors: list[TensorSpec] = []
        for path in files:
            tensors.extend(tensors_from_header(read_safetensors_header(path)))
        return ModelShapes(tuple(_dedupe_tied(tensors, config)), config, f"{folder} (safetensors)")
    return shapes_from_config(config, f"{folder}/config.json (no safetensors; shapes computed)")


# ------------------------------------------------------------------------------------ the Hub

HubFetch = Callable[[str, str | None], tuple[dict[str, Any], list[TensorSpec]]]


def hub_fetch(repo: str, revision: str | None) -> tuple[dict[str, Any], list[TensorSpec]]:
    """config.json and every tensor's shape of a Hub repository, without the weights."""
    from huggingface_hub import get_safetensors_metadata, hf_hub_download

    token = os.environ.get("HF_TOKEN") or None
    config_file = hf_hub_download(repo, "config.json", revision=revision, token=token)
    config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    meta = get_safetensors_metadata(repo, revision=revision, token=token)
    tensors = [
        TensorSpec(name, tuple(int(d) for d in info.shape), str(info.dtype))
        for file_meta in meta.files_metadata.values()
        for name, info in file_meta.tensors.items()
    ]
    return config, tensors


def read_hub(repo: str, revision: str | None = None, fetch: HubFetch | None = None) -> ModelShapes:
    try:
        config, tensors = (fetch or hub_fetch)(repo, revision)
    except ModelShapeError:
        raise
    except Exception as err:  # offline, gated, missing: all mean "cannot tell from here"
        raise ModelShapeError(
            f"model.name_or_path: cannot read {repo!r} from the Hugging Face Hub "
            f"({type(err).__name__}: {err}); check the id, the network, or a token for a "
            "gated model"
        ) from None
    return ModelShapes(tuple(_dedupe_tied(tensors, config)), config, f"hub:{repo}")


# ------------------------------------------------------------------- shapes from a config


def shapes_from_config(config: dict[str, Any], source: str, dtype: str = "") -> ModelShapes:
    """The tensors of a Llama-family decoder (llama, mistral, qwen2, qwen3) from its config.

    Layout as in transformers' ``modeling_llama.py``: embed_tokens (V, h); per layer q (a*d, h),
    k and v (kv*d, h), o (h, a*d), gate and up (I, h), down (h, I), two RMSNorm (h); final norm
    (h); lm_head (V, h) unless tied. qwen2 adds q/k/v biases, qwen3 q/k norms (d)."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(cfg, dict)
    kind = str(cfg.get("model_type", "llama"))
    if kind not in ("llama", "mistral", "qwen2", "qwen3"):
        raise ModelShapeError(
            f"{source}: no safetensors weights and model_type {kind!r} is not one whose layout "
            "is known here (llama, mistral, qwen2, qwen3); use a folder with .safetensors files"
        )
    stored = dtype or {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}.get(
        str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"), "F32"
    )
    h, v = int(cfg["hidden_size"]), int(cfg["vocab_size"])
    heads = int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    d = int(cfg.get("head_dim") or h // heads)
    inter = int(cfg["intermediate_size"])
    bias = kind == "qwen2" or bool(cfg.get("attention_bias", False))

    def t(name: str, *shape: int) -> TensorSpec:
        return TensorSpec(name, tuple(shape), stored)

    tensors = [t("model.embed_tokens.weight", v, h), t("model.norm.weight", h)]
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"model.layers.{i}."
        tensors += [
            t(p + "self_attn.q_proj.weight", heads * d, h),
            t(p + "self_attn.k_proj.weight", kv * d, h),
            t(p + "self_attn.v_proj.weight", kv * d, h),
            t(p + "self_attn.o_proj.weight", h, heads * d),
            t(p + "mlp.gate_proj.weight", inter, h),
            t(p + "mlp.up_proj.weight", inter, h),
            t(p + "mlp.down_proj.weight", h, inter),
            t(p + "input_layernorm.weight", h),
            t(p + "post_attention_layernorm.weight", h),
        ]
        if bias:
            tensors += [
                t(p + "self_attn.q_proj.bias", heads * d),
                t(p + "self_attn.k_proj.bias", kv * d),
                t(p + "self_attn.v_proj.bias", kv * d),
            ]
        if kind == "qwen3":
            tensors += [t(p + "self_attn.q_norm.weight", d), t(p + "self_attn.k_norm.weight", d)]
    if not cfg.get("tie_word_embeddings", False):
        tensors.append(t("lm_head.weight", v, h))
    return ModelShapes(tuple(tensors), dict(config), source)


# ---------------------------------------------------------------------------- built-in models


def builtin_cache_dir() -> Path:
    """Where the trainer builds built-in models (trainer.modeling.cache_dir, the same rule)."""
    env = os.environ.get("TUNEDECK_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tunedeck"


def smollm2_config_from_gguf(path: Path) -> dict[str, Any]:
    """A Llama config.json from the GGUF file's metadata (``gguf.GGUFReader``, numpy only)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str) -> Any:
        return reader.fields[key].contents()

    arch = str(value("general.architecture"))
    heads = int(value(f"{arch}.attention.head_count"))
    hidden = int(value(f"{arch}.embedding_length"))
    names = {t.name for t in reader.tensors}
    return {
        "model_type": "llama",
        "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
        "hidden_size": hidden,
        "intermediate_size": int(value(f"{arch}.feed_forward_length")),
        "num_hidden_layers": int(value(f"{arch}.block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(value(f"{arch}.attention.head_count_kv")),
        "head_dim": hidden // heads,
        # a GGUF without its own output tensor reuses the token embedding
        "tie_word_embeddings": "output.weight" not in names,
        "torch_dtype": "float32",  # trainer.tiny_model.build_smollm2 saves float32
    }


def read_builtin(name: str, cache: Path | None = None) -> ModelShapes:
    folder = (cache or builtin_cache_dir()) / name.removeprefix(BUILTIN_PREFIX)
    if (folder / "config.json").is_file():
        return read_local_folder(folder)
    if name == TINY_LLAMA:
        return shapes_from_config(TINY_LLAMA_CONFIG, f"{name} (known config; not built yet)")
    if name == SMOLLM2:
        try:
            gguf_path = smollm2_gguf_file()
        except BuiltinModelMissing as err:
            raise ModelShapeError(str(err)) from None
        try:
            config = smollm2_config_from_gguf(gguf_path)
        except ImportError:
            raise ModelShapeError(
                f"{SMOLLM2}: reading its GGUF file needs the gguf package (pip install gguf)"
            ) from None
        return shapes_from_config(config, f"{name} ({gguf_path.name} metadata)")
    raise ModelShapeError(
        f"model.name_or_path: unknown built-in model {name!r}; the built-in ones are "
        f"{TINY_LLAMA}, {SMOLLM2}"
    )


def read_model_shapes(
    name: str,
    *,
    revision: str | None = None,
    base_dir: Path | None = None,
    fetch: HubFetch | None = None,
) -> ModelShapes:
    """The shapes of ``model.name_or_path`` as the trainer would resolve it (built-in, local
    folder, else a Hub id)."""
    if name.startswith(BUILTIN_PREFIX):
        return read_builtin(name)
    path = Path(name).expanduser()
    candidates: Iterable[Path] = (
        (path,)
        if path.is_absolute() or base_dir is None
        else (
            path,
            base_dir / path,
        )
    )
    for candidate in candidates:
        if candidate.is_dir():
            return read_local_folder(candidate)
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelShapeError(
            f"model.name_or_path: folder {name!r} does not exist (give a folder or a Hub id)"
        )
    return read_hub(name, revision, fetch)
