"""The planner: where shapes come from, what would make a run fit (in order), the retry
variant, both command lines, and that it stays light."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer.config import RunConfig, parse_config
from trainer.planner import (
    GpuOffer,
    ModelShapeError,
    estimate_memory,
    less_memory_variant,
    make_plan,
    read_model_shapes,
)
from trainer.planner.model_shapes import (
    SMOLLM2,
    TINY_LLAMA,
    TensorSpec,
    read_builtin,
    read_local_folder,
    read_safetensors_header,
    shapes_from_config,
    tensors_from_header,
)

REPO = Path(__file__).resolve().parents[2]
# a 7B Llama (Llama-2-7B's config.json): too big for full fine-tuning on 24 GB
LLAMA_7B = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
RTX_4090 = GpuOffer("NVIDIA GeForce RTX 4090", 24, 0.69)
H100 = GpuOffer("NVIDIA H100 80GB HBM3", 80, 2.69)
A4000 = GpuOffer("NVIDIA RTX A4000", 16, 0.25)


def _cfg(**sections: Any) -> RunConfig:
    return parse_config({"model": {"name_or_path": "local-7b"}, **sections})


def _shapes_of(spec: dict[str, Any]) -> Any:
    return shapes_from_config(spec, "test")


# ----------------------------------------------------------------------------- shape sources


def test_builtin_names_match_the_trainer() -> None:
    from trainer import tiny_model

    assert (TINY_LLAMA, SMOLLM2) == tiny_model.BUILTIN_MODELS


def test_tiny_model_known_config_equals_the_built_folder(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    unbuilt = read_builtin(TINY_LLAMA, cache=tmp_path)  # no folder there: the known config
    built = read_local_folder(tiny_model_dir)
    assert "known config" in unbuilt.source
    assert {(t.name, t.shape) for t in unbuilt.tensors} == {
        (t.name, t.shape) for t in built.tensors
    }


@pytest.mark.slow
def test_smollm2_gguf_metadata_equals_the_built_folder(tmp_path: Path) -> None:
    from trainer.modeling import cache_dir
    from trainer.tiny_model import builtin_model_folder

    built = read_local_folder(builtin_model_folder(SMOLLM2, cache_dir()))
    from_gguf = read_builtin(SMOLLM2, cache=tmp_path)
    assert "gguf" in from_gguf.source
    assert from_gguf.num_parameters == built.num_parameters == 134_515_008
    assert {(t.name, t.shape) for t in from_gguf.tensors} == {
        (t.name, t.shape) for t in built.tensors
    }


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A real safetensors file: header, then the (zero) data it promises."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = {"F32": 4, "BF16": 2}[dtype] * max(1, __import__("math").prod(shape))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_sharded_folder_reads_every_shard_and_counts_a_tied_head_once(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    _write_safetensors(
        tmp_path / "a.safetensors",
        {"model.embed_tokens.weight": ("BF16", [10, 4]), "model.norm.weight": ("F32", [4])},
    )
    _write_safetensors(tmp_path / "b.safetensors", {"lm_head.weight": ("BF16", [10, 4])})
    index = {
        "weight_map": {
            "model.embed_tokens.weight": "a.safetensors",
            "model.norm.weight": "a.safetensors",
            "lm_head.weight": "b.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    shapes = read_local_folder(tmp_path)
    assert shapes.num_parameters == 44  # 40 + 4; the tied head is the embedding


def test_a_file_that_is_not_safetensors_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\xff" * 16)
    with pytest.raises(ModelShapeError, match=r"model\.safetensors"):
        read_safetensors_header(bad)


def test_hub_model_through_a_stand_in(tiny_model_dir: Path) -> None:
    """The Hub cannot be reached from tests; a stand-in serves what huggingface_hub would:
    config.json and the safetensors headers (here the tiny model's)."""
    asked: list[tuple[str, str | None]] = []

    def fetch(repo: str, revision: str | None) -> tuple[dict[str, Any], list[TensorSpec]]:
        asked.append((repo, revision))
        config = json.loads((tiny_model_dir / "config.json").read_text())
        return config, tensors_from_header(
            read_safetensors_header(tiny_model_dir / "model.safetensors")
        )

    shapes = read_model_shapes("someone/tiny", revision="v1", fetch=fetch)
    assert asked == [("someone/tiny", "v1")]
    assert shapes.source == "hub:someone/tiny"
    assert shapes.num_parameters == read_local_folder(tiny_model_dir).num_parameters


def test_an_unreachable_hub_model_says_what_to_check() -> None:
    def offline(repo: str, revision: str | None) -> tuple[dict[str, Any], list[TensorSpec]]:
        raise OSError("network unreachable")

    with pytest.raises(ModelShapeError, match=r"cannot read 'someone/model'.*check the id"):
        read_model_shapes("someone/model", fetch=offline)


# ------------------------------------------------------------------------------ the estimate


def test_lora_with_a_4bit_base_needs_less_than_full_fine_tuning() -> None:
    shapes = _shapes_of(LLAMA_7B)
    full = estimate_memory(_cfg(adapter={"kind": "full"}), shapes)
    lora = estimate_memory(_cfg(adapter={"kind": "lora"}), shapes)
    qlora = estimate_memory(_cfg(adapter={"kind": "qlora"}), shapes)
    # LoRA's weights are the frozen base plus its float32 adapters
    assert lora.part("weights") - lora.part("trainable") == full.part("weights")
    # NF4 blocks + float32 embeddings and head (peft upcasts what is not quantised)
    assert qlora.part("weights") < full.part("weights") / 2
    assert lora.peak_bytes < full.peak_bytes
    assert lora.part("optimizer") < full.part("optimizer") / 50
    # 7B in bf16 is ~12.6 GiB of weights; full AdamW state in bf16 twice that
    assert full.part("weights") == shapes.num_parameters * 2
    assert full.part("optimizer") == 2 * full.part("weights")
    assert lora.part("extra_models") == 0


def test_dpo_needs_a_reference_copy_only_without_lora() -> None:
    shapes = _shapes_of(LLAMA_7B)
    full = estimate_memory(_cfg(method="dpo", adapter={"kind": "full"}), shapes)
    lora = estimate_memory(_cfg(method="dpo", adapter={"kind": "lora"}), shapes)
    assert full.part("extra_models") == full.part("weights")
    assert lora.part("extra_models") == 0
    sft = estimate_memory(_cfg(adapter={"kind": "lora"}), shapes)
    assert lora.sequences == 2 * sft.sequences  # chosen and rejected in one forward


def test_grpo_counts_a_kv_cache_for_every_completion_of_a_generation_batch() -> None:
    shapes = _shapes_of(LLAMA_7B)
    small = estimate_memory(_cfg(method="grpo", grpo={"num_generations": 4}), shapes)
    more = estimate_memory(
        _cfg(
            method="grpo",
            grpo={"num_generations": 4},
            training={"gradient_accumulation_steps": 2},
        ),
        shapes,
    )
    assert small.part("generation_cache") > 0
    assert more.part("generation_cache") == 2 * small.part("generation_cache")
    # sampling, then training: the cache and the activations are never held together
    parts = sum(p.bytes for p in more.parts if p.key != "trainable")
    smaller = min(more.part("generation_cache"), more.part("activations"))
    assert more.peak_bytes == parts - smaller


def test_checkpointing_shrinks_activations() -> None:
    shapes = _shapes_of(LLAMA_7B)
    plain = estimate_memory(_cfg(), shapes)
    ckpt = estimate_memory(_cfg(training={"gradient_checkpointing": True}), shapes)
    assert ckpt.part("activations") < plain.part("activations") / 3


# -------------------------------------------------------------------- what would make it fit


def test_suggestions_come_in_the_documented_order_and_are_re_estimated() -> None:
    cfg = _cfg(
        adapter={"kind": "full"},
        training={"per_device_train_batch_size": 4, "max_length": 4096},
    )
    plan = make_plan(
        cfg,
        [RTX_4090, H100],
        shapes=_shapes_of(LLAMA_7B),
        target=RTX_4090.name,
        local=[],
        count_dataset=False,
    )
    assert plan.target_fits is False
    texts = [s.description for s in plan.suggestions]
    kinds = [
        "batch size" if t.startswith("batch size") else t.split(" ")[0] + " " + t.split(" ")[1]
        for t in texts
    ]
    assert texts[0].startswith("batch size 4 → 2 with gradient accumulation 1 → 2")
    assert texts[1].startswith("batch size 2 → 1 with gradient accumulation 2 → 4")
    assert texts[2].startswith("gradient checkpointing on")
    assert texts[3].startswith("a 4-bit base")
    assert kinds.index("batch size") < kinds.index("gradient checkpointing")
    peaks = [s.peak_bytes for s in plan.suggestions if s.config is not None]
    assert peaks == sorted(peaks, reverse=True)  # each change builds on the one before
    config_changes = [s for s in plan.suggestions if s.config is not None]
    assert config_changes[-1].fits and not any(s.fits for s in config_changes[:-1])
    last = config_changes[-1].config
    assert last is not None and last.adapter.kind == "qlora"
    # the effective batch never changes
    assert (
        last.training.per_device_train_batch_size * last.training.gradient_accumulation_steps == 4
    )


def test_a_larger_gpu_is_the_cheapest_one_that_fits_as_is() -> None:
    cfg = _cfg(adapter={"kind": "lora"}, training={"per_device_train_batch_size": 1})
    big = GpuOffer("NVIDIA H200", 141, 3.59)
    plan = make_plan(
        cfg,
        [A4000, big, H100],
        shapes=_shapes_of(LLAMA_7B),
        target=A4000.name,
        local=[],
        count_dataset=False,
    )
    assert plan.target_fits is False
    assert plan.suggestions[-1].gpu == H100  # fits and is cheaper than the H200


def test_less_memory_variant_applies_the_first_applicable_change() -> None:
    cfg = _cfg(
        adapter={"kind": "lora"}, training={"per_device_train_batch_size": 2, "max_length": 1024}
    )
    seen = []
    for _ in range(8):
        step = less_memory_variant(cfg)
        if step is None:
            break
        cfg, description = step
        seen.append(description)
    assert seen == [
        "batch size 2 → 1 with gradient accumulation 1 → 2 (same effective batch)",
        "gradient checkpointing on (about 30% slower)",
        "a 4-bit base: LORA → QLoRA (NF4)",
        "max length 1024 → 512 tokens (longer rows are cut)",
        "max length 512 → 256 tokens (longer rows are cut)",
    ]


def test_kto_keeps_two_rows_per_batch() -> None:
    cfg = parse_config({"method": "kto", "training": {"per_device_train_batch_size": 2}})
    step = less_memory_variant(cfg)
    assert step is not None and step[0].training.per_device_train_batch_size == 2
    assert step[1].startswith("gradient checkpointing")


# ---------------------------------------------------------------------------- time and money


def test_time_and_cost_follow_the_gpu_and_its_price(tmp_path: Path) -> None:
    rows = tmp_path / "d.jsonl"
    rows.write_text("\n".join(json.dumps({"text": "word " * 200}) for _ in range(100)))
    cfg = parse_config(
        {
            "method": "cpt",
            "model": {"name_or_path": "local-7b"},
            "dataset": {"path": str(rows), "eval_fraction": 0.0},
            "adapter": {"kind": "lora"},
            "training": {"per_device_train_batch_size": 1, "max_length": 128},
        }
    )
    plan = make_plan(cfg, [RTX_4090, H100], shapes=_shapes_of(LLAMA_7B), local=[])
    assert plan.tokens is not None and plan.tokens.tokens == 100 * 128  # 250 tokens cut to 128
    by_name = {f.gpu.name: f for f in plan.gpus}
    slow, fast = by_name[RTX_4090.name], by_name[H100.name]
    assert slow.hours is not None and fast.hours is not None
    assert slow.hours / fast.hours == pytest.approx(989.0 / 165.2)
    assert fast.cost == pytest.approx(fast.hours * 2.69)


# -------------------------------------------------------------------------- command lines


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "name": "plan-me",
                "model": {"name_or_path": "builtin:tiny-llama"},
                "dataset": {"path": "resources/datasets/demo-chat.jsonl"},
            }
        )
    )
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_both_command_lines_print_the_same_table(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    table = REPO / "app" / "core" / "runpod" / "gpu_table.json"
    trainer = _run(
        [sys.executable, "-m", "trainer", "plan", "--config", str(config), "--gpus", str(table)],
        REPO,
    )
    app = _run([sys.executable, "-m", "app.cli", "plan", str(config), "--offline"], REPO)
    assert trainer.returncode == 0, trainer.stderr
    assert app.returncode == 0, app.stderr
    assert "Peak GPU memory" in trainer.stdout and "NVIDIA H200" in trainer.stdout
    app_lines = app.stdout.splitlines()
    assert app_lines[-1].startswith("note: RunPod prices from Tunedeck's table")
    assert app_lines[:-1] == trainer.stdout.splitlines()


def test_plan_json_and_a_bad_model(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    out = _run([sys.executable, "-m", "trainer", "plan", "--config", str(config), "--json"], REPO)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["peak_bytes"] == sum(v for k, v in doc["memory"].items() if k != "trainable")
    assert doc["num_parameters"] == 139_584
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"name_or_path": "/no/such/folder"}}))
    out = _run([sys.executable, "-m", "trainer", "plan", "--config", str(bad)], REPO)
    assert out.returncode == 2
    assert "folder '/no/such/folder' does not exist" in out.stderr


def test_the_planner_never_loads_the_training_stack(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    code = (
        "import sys, json\n"
        "from trainer.config import load_config\n"
        "from trainer.planner import make_plan, format_plan\n"
        f"print(format_plan(make_plan(load_config({str(config)!r}), local=[])))\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'safetensors') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = _run([sys.executable, "-c", code], REPO)
    assert out.returncode == 0, out.stderr


def test_this_computers_gpus_come_from_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: a stand-in nvidia-smi answers the query the planner makes, in its format."""
    from trainer.planner import local_gpus

    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--query-gpu=name,memory.total" ] || exit 9\n'
        "echo 'NVIDIA GeForce RTX 3090, 24576'\n"
        "echo 'NVIDIA A100-SXM4-80GB, 81920'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    gpus = local_gpus()
    assert [(g.name, g.memory_gb, g.local) for g in gpus] == [
        ("NVIDIA GeForce RTX 3090", 24.0, True),
        ("NVIDIA A100-SXM4-80GB", 80.0, True),
    ]
    plan = make_plan(_cfg(), shapes=_shapes_of(LLAMA_7B), count_dataset=False)
    assert plan.target is not None and plan.target.gpu.name == "NVIDIA GeForce RTX 3090"


def test_no_driver_means_no_local_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.planner import local_gpus

    monkeypatch.setenv("PATH", str(tmp_path))
    assert local_gpus() == []


def test_a_gpu_without_bfloat16_is_estimated_with_float32_weights() -> None:
    """On a T4 the trainer loads float32 weights with fp16 autocast (plan_device): twice the
    weights of a bf16 GPU, so a run can fit an A4000 (16 GB) and not a T4 (16 GB)."""
    t4 = GpuOffer("Tesla T4", 16, 0.0, local=True)
    cfg = _cfg(
        adapter={"kind": "lora"},
        training={
            "per_device_train_batch_size": 1,
            "max_length": 256,
            "gradient_checkpointing": True,
        },
    )
    plan = make_plan(cfg, [A4000], shapes=_shapes_of(LLAMA_7B), local=[t4], count_dataset=False)
    assert (plan.estimate.weights_dtype, plan.estimate.precision) == ("float32", "fp16")
    by_name = {f.gpu.name: f for f in plan.gpus}
    assert by_name["Tesla T4"].fits is False and by_name[A4000.name].fits is True
    assert plan.target is not None and plan.target.gpu == t4
    assert plan.suggestions[0].description.startswith("a 4-bit base")
