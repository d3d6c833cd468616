"""GGUF export: the file read back with the gguf package's own reader, the q/k re-ordering
llama.cpp needs, the Ollama Modelfile, and the export verb's progress, refusal and cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
gguf = pytest.importorskip("gguf")

from tests.trainer.export_runs import train_lora  # noqa: E402
from trainer.export import ExportError  # noqa: E402
from trainer.export.chat_template import portable_template, read_chat_template  # noqa: E402
from trainer.export.cli import _terminate_as_interrupt, run_export  # noqa: E402
from trainer.export.gguf_writer import write_gguf  # noqa: E402
from trainer.export.merge import TrainedModel, save_merged  # noqa: E402
from trainer.export.modelfile import CHATML_GO_TEMPLATE, modelfile_text  # noqa: E402
from trainer.export.progress import Progress  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
Q = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def lora_config(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return train_lora(tmp_path_factory.mktemp("gguf-run"), tiny_model_dir)


@pytest.fixture(scope="module")
def merged_dir(lora_config: Path, tiny_model_dir: Path) -> Path:
    out = lora_config.parent / "merged"
    return save_merged(TrainedModel(lora_config.parent / "out", str(tiny_model_dir)), out)


def _field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


def _hf_tensors(model_dir: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118


def check_gguf_file(path: Path, model_dir: Path, gguf_type: str) -> None:
    """Every tensor of the model present with its shape and type; tokenizer and template."""
    reader = gguf.GGUFReader(path)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    tensors = {t.name: t for t in reader.tensors}
    expected = {}
    for hf_name, shape in _hf_tensors(model_dir).items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        expected[names.get_name(hf_name, try_suffixes=(".weight",))] = shape
    assert set(tensors) == set(expected)
    for name, shape in expected.items():
        tensor = tensors[name]
        # GGUF lists dimensions innermost first
        assert tuple(int(d) for d in tensor.shape) == tuple(reversed(shape)), name
        if len(shape) == 1:
            assert tensor.tensor_type == Q.F32, name
        else:
            assert tensor.tensor_type == (Q.F16 if gguf_type == "f16" else Q.Q8_0), name

    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "llama.block_count") == config["num_hidden_layers"]
    assert _field(reader, "llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "gpt-2"  # a name llama.cpp knows
    vocab = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == config["vocab_size"]
    for text, token_id in vocab["model"]["vocab"].items():
        assert tokens[token_id] == text
    assert len(_field(reader, "tokenizer.ggml.merges")) == len(vocab["model"]["merges"])
    template = read_chat_template(model_dir)
    assert template is not None
    assert _field(reader, "tokenizer.chat_template") == portable_template(template)
    eos = next(a["id"] for a in vocab["added_tokens"] if a["content"] == "<|im_end|>")
    assert _field(reader, "tokenizer.ggml.eos_token_id") == eos
    types = _field(reader, "tokenizer.ggml.token_type")
    assert types[eos] == gguf.TokenType.CONTROL


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
def test_gguf_file_reads_back_with_every_tensor_tokenizer_and_template(
    merged_dir: Path, tmp_path: Path, gguf_type: str
) -> None:
    path = write_gguf(merged_dir, tmp_path / f"m-{gguf_type}.gguf", gguf_type)
    check_gguf_file(path, merged_dir, gguf_type)


def test_generation_markers_are_left_out_of_the_gguf_template(merged_dir: Path) -> None:
    template = read_chat_template(merged_dir)
    assert template is not None and "{% generation %}" in template
    assert "{% generation %}" not in portable_template(template)
    assert "{% endgeneration %}" not in portable_template(template)
    assert portable_template(template).count("<|im_end|>") == template.count("<|im_end|>")


def test_q_and_k_rows_are_reordered_for_llama_cpp_rope(merged_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    path = write_gguf(merged_dir, tmp_path / "m.gguf", "f16")
    tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    with safe_open(str(merged_dir / "model.safetensors"), framework="pt") as f:
        for proj, gguf_name in (("q_proj", "attn_q"), ("k_proj", "attn_k")):
            hf = f.get_tensor(f"model.layers.0.self_attn.{proj}.weight").float().numpy()
            stored = tensors[f"blk.0.{gguf_name}.weight"].data.astype("float32")
            n = heads[proj]
            # llama.cpp pairs dimension i with i + half inside each head: interleaved rows
            expected = hf.reshape(n, 2, hf.shape[0] // n // 2, hf.shape[1]).swapaxes(1, 2)
            assert stored.shape == hf.shape
            assert not (abs(stored - hf) < 1e-2).all(), "rows were not re-ordered"
            assert abs(stored - expected.reshape(hf.shape)).max() < 1e-2


def test_modelfile_translates_chatml_and_keeps_a_default_system_prompt() -> None:
    smollm2 = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}"
        "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    text, note = modelfile_text("m-f16.gguf", smollm2, "demo")
    assert "FROM ./m-f16.gguf" in text
    assert f'TEMPLATE """{CHATML_GO_TEMPLATE}"""' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert "translated" in note


def test_modelfile_leaves_out_a_template_it_cannot_translate() -> None:
    llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}"
    text, note = modelfile_text("m.gguf", llama3, "demo")
    assert "TEMPLATE" not in text and "FROM ./m.gguf" in text
    assert "only kind translated" in note and note in text


def test_a_model_that_is_not_llama_is_refused_by_its_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ExportError, match=r"config\.json.*LlamaForCausalLM"):
        write_gguf(tmp_path, tmp_path / "x.gguf", "f16")


def _verb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "trainer", "export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow  # three export subprocesses (each imports torch): 10-15 s
def test_export_verb_writes_gguf_and_modelfile_with_progress_and_refuses_to_overwrite(
    lora_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gguf"
    done = _verb("--config", str(lora_config), "--gguf", "q8_0", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = _events(done.stdout)
    steps = [e for e in events if e["event"] == "progress" and e["stage"] == "gguf"]
    assert steps and steps[-1]["done"] == steps[-1]["total"] == len(steps)
    assert [e["bytes"] for e in steps] == sorted(e["bytes"] for e in steps)
    final = events[-1]
    assert final["event"] == "done" and final["kind"] == "gguf-q8_0"
    on_disk = {p.name: p.stat().st_size for p in out.iterdir()}
    assert on_disk.keys() == {"export-demo-q8_0.gguf", "Modelfile"}
    assert final["bytes"] == sum(on_disk.values())
    assert "FROM ./export-demo-q8_0.gguf" in (out / "Modelfile").read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []

    before = (out / "export-demo-q8_0.gguf").stat().st_mtime_ns
    again = _verb("--config", str(lora_config), "--gguf", "q8_0", str(out), cwd=tmp_path)
    assert again.returncode == 2
    error = _events(again.stdout)[-1]
    assert error["event"] == "error" and "not empty" in error["message"]
    assert "--force" in error["hint"] and str(out) in again.stderr
    assert (out / "export-demo-q8_0.gguf").stat().st_mtime_ns == before

    forced = _verb(
        "--config", str(lora_config), "--gguf", "q8_0", str(out), "--force", cwd=tmp_path
    )
    assert forced.returncode == 0, forced.stderr
    assert (out / "export-demo-q8_0.gguf").stat().st_mtime_ns != before


class _CancelAt(Progress):
    """Progress that raises KeyboardInterrupt (what SIGTERM becomes) when ``stage`` begins."""

    def __init__(self, stage: str) -> None:
        super().__init__(None)
        self.at = stage

    def stage(self, stage: str, message: str) -> None:
        if stage == self.at:
            raise KeyboardInterrupt


def test_a_cancelled_export_leaves_nothing_behind(lora_config: Path, tmp_path: Path) -> None:
    from trainer.__main__ import _sub_parser

    out = tmp_path / "exports" / "gguf"
    ns = _sub_parser("export").parse_args(["--config", str(lora_config), "--gguf", "f16", str(out)])
    with pytest.raises(KeyboardInterrupt):
        run_export(ns, _CancelAt("gguf"))  # after the merge, while the GGUF is being written
    assert not out.exists()
    assert list((tmp_path / "exports").iterdir()) == []


def test_sigterm_unwinds_like_ctrl_c_while_exporting() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
def test_smollm2_gguf_reads_back(tmp_path: Path, gguf_type: str) -> None:
    from trainer.modeling import cache_dir
    from trainer.tiny_model import SMOLLM2, builtin_model_folder

    model_dir = builtin_model_folder(SMOLLM2, cache_dir())
    path = write_gguf(model_dir, tmp_path / f"smollm2-{gguf_type}.gguf", gguf_type)
    check_gguf_file(path, model_dir, gguf_type)
