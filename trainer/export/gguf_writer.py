"""A Hugging Face Llama-family model folder written as one GGUF file for llama.cpp and Ollama.

Built on the ``gguf`` package (llama.cpp's own Python side): its writer, its Hugging Face →
GGUF tensor-name map and its numpy Q8_0 quantiser. What is ours is the converter itself:
- the ``llama`` architecture (LlamaForCausalLM) with a GPT-2-style byte-level BPE tokenizer
  (``tokenizer.json``; the tiny demo model and SmolLM2 are both);
- q_proj / k_proj rows re-ordered from Hugging Face's rotate-half RoPE layout to llama.cpp's
  interleaved pairs (without it the file loads and generates nonsense);
- f16: 2-D weights in F16, norms in F32; q8_0: 2-D weights in Q8_0 (F16 where a row is not a
  multiple of 32 values), norms in F32.
Tensors are read one at a time and written as they are converted, so memory stays at about one
tensor, and each one is reported as progress.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.export import ExportError
from trainer.export.chat_template import portable_template, read_chat_template
from trainer.export.progress import SILENT, Progress

GGUF_TYPES = ("f16", "q8_0")
SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM": "llama"}
# pre-tokenizers we can name for llama.cpp (it applies its own regex by this name)
_BYTE_LEVEL_PRE = "gpt-2"  # llama.cpp's name for the GPT-2 regex (not "gpt2")


@dataclass(frozen=True)
class _Tensor:
    hf_name: str
    gguf_name: str
    file: Path
    shape: tuple[int, ...]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: cannot be read ({err})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: is not a JSON object")
    return data


def check_supported(model_dir: Path) -> dict[str, Any]:
    """The model's config when this converter can write it; otherwise an ExportError naming
    what is not supported."""
    config = _read_json(model_dir / "config.json")
    archs = config.get("architectures") or []
    if not any(a in SUPPORTED_ARCHITECTURES for a in archs):
        raise ExportError(
            f"{model_dir / 'config.json'}: architectures {archs}: GGUF export supports "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} only",
            "export the merged model instead (--merged) and convert it with llama.cpp's "
            "convert_hf_to_gguf.py",
        )
    rope = config.get("rope_scaling") or {}
    rope_type = (config.get("rope_parameters") or {}).get("rope_type") or rope.get("rope_type")
    if rope_type not in (None, "default"):
        raise ExportError(
            f"{model_dir / 'config.json'}: RoPE scaling {rope_type!r} is not supported by the "
            "GGUF export (only the default RoPE)"
        )
    _tokenizer_json(model_dir)  # fails early on a tokenizer we cannot write
    return config


def _tokenizer_json(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ExportError(
            f"{model_dir}: no tokenizer.json; the GGUF export needs a fast (byte-level BPE) "
            "tokenizer"
        )
    data = _read_json(path)
    model = data.get("model") or {}
    pre = data.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or pre.get("type") != "ByteLevel":
        raise ExportError(
            f"{path}: tokenizer {model.get('type')} with pre-tokenizer {pre.get('type')}: the "
            "GGUF export supports byte-level BPE tokenizers (GPT-2 style) only"
        )
    return data


def _vocab(model_dir: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens in id order and their llama.cpp token types (control for special added tokens)."""
    import gguf

    data = _tokenizer_json(model_dir)
    by_id: dict[int, str] = {i: t for t, i in data["model"]["vocab"].items()}
    kinds: dict[int, int] = {}
    for added in data.get("added_tokens") or []:
        by_id[added["id"]] = added["content"]
        special = added.get("special", False)
        kinds[added["id"]] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    size = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    for i in range(size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(kinds.get(i, int(gguf.TokenType.NORMAL)))
        else:  # the embedding has more rows than the tokenizer has tokens
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
    return tokens, types


def _adds_special_tokens(model_dir: Path) -> bool:
    """Whether the Hugging Face tokenizer puts a token in front of a plain text (a BOS)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    plain = tokenizer.encode("a", add_special_tokens=False).ids
    return len(tokenizer.encode("a").ids) > len(plain)


def _tensors(model_dir: Path, config: dict[str, Any]) -> list[_Tensor]:
    import gguf
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no *.safetensors weights")
    n_blocks = int(config["num_hidden_layers"])
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    out: list[_Tensor] = []
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                if name == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # llama.cpp uses token_embd when output.weight is absent
                gguf_name = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise ExportError(f"{file}: tensor {name!r} has no GGUF name for llama")
                shape = tuple(f.get_slice(name).get_shape())
                out.append(_Tensor(name, gguf_name, file, shape))
    return out


def _permute(weights: Any, n_head: int) -> Any:
    """Rotate-half RoPE rows (Hugging Face) to interleaved pairs (llama.cpp), head by head."""
    shape = weights.shape
    return (
        weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )


def _target_type(shape: tuple[int, ...], gguf_type: str) -> Any:
    from gguf import GGMLQuantizationType as Q

    if len(shape) == 1:
        return Q.F32
    if gguf_type == "q8_0" and shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.F16


def _stored(shape: tuple[int, ...], qtype: Any) -> tuple[tuple[int, ...], Any, int]:
    """(array shape, numpy dtype, bytes) of a tensor stored as ``qtype``."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quant_shape_to_byte_shape

    count = int(np.prod(shape))
    if qtype == Q.F32:
        return shape, np.float32, count * 4
    if qtype == Q.F16:
        return shape, np.float16, count * 2
    byte_shape = tuple(quant_shape_to_byte_shape(shape, qtype))
    return byte_shape, np.uint8, int(np.prod(byte_shape))


def _converted(tensor: _Tensor, qtype: Any, config: dict[str, Any]) -> Any:
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize
    from safetensors import safe_open

    with safe_open(str(tensor.file), framework="pt") as f:
        data = f.get_tensor(tensor.hf_name).to(torch.float32).numpy()
    n_head = int(config["num_attention_heads"])
    if tensor.hf_name.endswith("self_attn.q_proj.weight"):
        data = _permute(data, n_head)
    elif tensor.hf_name.endswith("self_attn.k_proj.weight"):
        data = _permute(data, int(config.get("num_key_value_heads") or n_head))
    if qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == Q.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return quantize(data, qtype)


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    return float(params.get("rope_theta") or config.get("rope_theta") or 10000.0)


def _add_metadata(writer: Any, model_dir: Path, config: dict[str, Any], gguf_type: str) -> None:
    import gguf

    n_head = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_head)
    writer.add_name(model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings") or 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    vocab_size = int(config["vocab_size"])
    writer.add_vocab_size(vocab_size)
    ftype = gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types = _vocab(model_dir, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_BYTE_LEVEL_PRE)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    template = read_chat_template(model_dir)
    special.chat_template = portable_template(template) if template else None
    special.add_special_token["bos"] = _adds_special_tokens(model_dir)
    special.add_to_gguf(writer, quiet=True)


def gguf_file_name(stem: str, gguf_type: str) -> str:
    return f"{stem}-{gguf_type}.gguf"


def write_gguf(
    model_dir: Path, out_file: Path, gguf_type: str, *, progress: Progress = SILENT
) -> Path:
    """Write ``model_dir`` (a Hugging Face Llama folder) to ``out_file`` as ``gguf_type``."""
    import gguf

    if gguf_type not in GGUF_TYPES:
        raise ExportError(f"GGUF type {gguf_type!r}: choose one of {', '.join(GGUF_TYPES)}")
    config = check_supported(model_dir)
    tensors = _tensors(model_dir, config)
    writer = gguf.GGUFWriter(out_file, SUPPORTED_ARCHITECTURES["LlamaForCausalLM"])
    _add_metadata(writer, model_dir, config, gguf_type)
    plan = [(t, _target_type(t.shape, gguf_type)) for t in tensors]
    for tensor, qtype in plan:
        shape, dtype, nbytes = _stored(tensor.shape, qtype)
        raw = qtype if dtype.__name__ == "uint8" else None
        writer.add_tensor_info(tensor.gguf_name, shape, dtype, nbytes, raw_dtype=raw)
    total = sum(_stored(t.shape, q)[2] for t, q in plan)
    progress.stage("gguf", f"writing {len(plan)} tensors ({gguf_type}) to {out_file.name}")
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        written = 0
        for done, (tensor, qtype) in enumerate(plan, start=1):
            array = _converted(tensor, qtype, config)
            writer.write_tensor_data(array)
            written += int(array.nbytes)
            progress.step("gguf", done, len(plan), written)
    finally:
        writer.close()
    if written != total:
        raise ExportError(f"{out_file}: wrote {written} tensor bytes, planned {total}")
    return out_file
