"""The pieces of a run that need no training: paths, resuming, the environment check, the
arguments handed to TRL, the launcher's command and the Hub push."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer.artifacts import Artifacts, HubPushError, push_to_hub
from trainer.config import ConfigError, parse_config
from trainer.launch import inside_launch, launch_command
from trainer.methods.arguments import common_args
from trainer.modeling import (
    DevicePlan,
    environment_problems,
    lora_config,
    plan_device,
    resolve_model_path,
)
from trainer.run import PACKAGE_ROOT, latest_checkpoint, resolve_paths, resolve_resume

CPU = DevicePlan(device="cpu", precision="fp32", weights_dtype="float32")


# ----------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_cwd_then_the_package_root(tmp_path: Path) -> None:
    (tmp_path / "mine.jsonl").write_text("{}\n")
    cfg = parse_config(
        {
            "dataset": {"path": "mine.jsonl", "eval_path": "resources/presets"},
            "model": {"name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"},
        }
    )
    out = resolve_paths(cfg, tmp_path)
    assert out.dataset.path == str(tmp_path / "mine.jsonl")  # found under the cwd
    assert out.dataset.eval_path == str(PACKAGE_ROOT / "resources" / "presets")  # the package's
    assert out.model.name_or_path == "Qwen/Qwen2.5-0.5B-Instruct"  # a Hub id is left alone
    assert cfg.dataset.path == "mine.jsonl"  # the caller's config is not changed


def test_a_reward_file_path_resolves_but_builtin_rewards_stay(tmp_path: Path) -> None:
    (tmp_path / "r.py").write_text("def f(completions, **kw):\n    return []\n")
    cfg = parse_config({"method": "grpo", "grpo": {"reward_functions": ["format", "r.py:f"]}})
    assert resolve_paths(cfg, tmp_path).grpo.reward_functions == ["format", f"{tmp_path}/r.py:f"]


def test_model_paths(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    assert resolve_model_path("m", tmp_path) == str((tmp_path / "m").resolve())
    assert resolve_model_path("org/model") == "org/model"
    built = Path(resolve_model_path("builtin:tiny-llama"))
    assert (built / "config.json").is_file()
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="unknown built-in"):
        resolve_model_path("builtin:huge")


# -------------------------------------------------------------------------- resuming


def test_latest_checkpoint_is_the_highest_step_not_the_newest_name(tmp_path: Path) -> None:
    for step in (5, 40, 100):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        # complete, as HF's Trainer leaves one (weights, then trainer_state.json last)
        header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
        (folder / "model.safetensors").write_bytes(
            len(header).to_bytes(8, "little") + header + b"\0" * 4
        )
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-final").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-100"


def test_resume_latest_without_checkpoints_is_a_clear_error(tmp_path: Path) -> None:
    cfg = parse_config({"checkpoint": {"resume_from_checkpoint": "latest"}})
    with pytest.raises(ConfigError) as err:
        resolve_resume(cfg, tmp_path)
    assert err.value.problems[0].startswith("checkpoint.resume_from_checkpoint: 'latest' found no")


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    cfg = parse_config({"checkpoint": {"resume_from_checkpoint": str(tmp_path)}})
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        resolve_resume(cfg, tmp_path)
    (tmp_path / "trainer_state.json").write_text("{}")
    assert resolve_resume(cfg, tmp_path) == str(tmp_path)


# ------------------------------------------------------------------------ environment


def test_qlora_without_gpu_is_a_config_error_before_anything_loads() -> None:
    problems = environment_problems(parse_config({"adapter": {"kind": "qlora"}}))
    assert problems and problems[0].startswith(
        "adapter.kind: QLoRA needs a CUDA GPU and the bitsandbytes package"
    )


def test_cuda_asked_for_on_a_cpu_machine() -> None:
    problems = environment_problems(parse_config({"runtime": {"device": "cuda"}}))
    assert any(p.startswith("runtime.device: 'cuda' was asked for") for p in problems)


def test_fp16_on_cpu_and_tensorboard_without_the_package() -> None:
    cfg = parse_config({"training": {"precision": "fp16"}, "logging": {"tensorboard": True}})
    problems = environment_problems(cfg)
    assert any(p.startswith("training.precision: fp16 needs a CUDA GPU") for p in problems)
    import importlib.util

    has_tb = importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    assert any(p.startswith("logging.tensorboard") for p in problems) == (not has_tb)


def test_auto_precision_on_this_cpu_is_fp32() -> None:
    plan = plan_device(parse_config({}))
    assert plan == CPU


# ---------------------------------------------------------------------- TRL arguments


def test_common_args_translate_the_config(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "training": {"max_steps": 7, "warmup_ratio": 0.1, "gradient_checkpointing": True},
            "logging": {"logging_steps": 3, "tensorboard": True},
            "checkpoint": {"save_steps": 9, "save_total_limit": 1},
            "evaluation": {"strategy": "steps", "eval_steps": 4},
        }
    )
    args = common_args(cfg, CPU, tmp_path, has_eval=True)
    assert args["max_steps"] == 7
    assert args["warmup_steps"] == 0.1  # transformers 5: a float below 1 is a ratio
    assert args["bf16"] is False and args["fp16"] is False and args["use_cpu"] is True
    assert args["report_to"] == ["tensorboard"]
    assert (args["eval_strategy"], args["eval_steps"]) == ("steps", 4)
    assert (args["save_steps"], args["save_total_limit"]) == (9, 1)
    assert args["activation_checkpointing"] is True
    # built for real, TRL accepts every one of them
    from trl import SFTConfig

    built = SFTConfig(**{**args, "report_to": "none"})
    assert built.logging_steps == 3 and built.gradient_checkpointing is True


def test_no_evaluation_without_an_eval_set(tmp_path: Path) -> None:
    args = common_args(parse_config({}), CPU, tmp_path, has_eval=False)
    assert args["eval_strategy"] == "no"
    assert args["max_steps"] == -1 and args["report_to"] == "none"


def test_lora_config_targets() -> None:
    assert lora_config(parse_config({"adapter": {"kind": "full"}})) is None
    lc = lora_config(parse_config({"adapter": {"target_modules": "q_proj, v_proj"}}))
    assert set(lc.target_modules) == {"q_proj", "v_proj"}
    assert lora_config(parse_config({}), task_type="SEQ_CLS").modules_to_save == ["score"]


# --------------------------------------------------------------------------- launcher


def test_launch_on_cpu_uses_torchrun(tmp_path: Path) -> None:
    cmd = launch_command(tmp_path / "c.json", "run-1", 2, device="cpu")
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2"
    assert cmd[-6:] == [
        "-m",
        "trainer",
        "--config",
        str(tmp_path / "c.json"),
        "--execution-id",
        "run-1",
    ]


def test_inside_launch_reads_world_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not inside_launch()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert inside_launch()


# ------------------------------------------------------------------------------- Hub


class FakeHub:
    """Stands in for the Hub's two calls; the Hub itself cannot be reached from tests."""

    calls: list[tuple[str, dict[str, Any]]] = []
    fail = False

    def __init__(self, token: str | None = None) -> None:
        self.calls.append(("init", {"token": token}))

    def create_repo(self, **kw: Any) -> None:
        if self.fail:
            raise OSError("connection refused")
        self.calls.append(("create_repo", kw))

    def upload_folder(self, **kw: Any) -> None:
        self.calls.append(("upload_folder", kw))


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> type[FakeHub]:
    import huggingface_hub

    FakeHub.calls = []
    FakeHub.fail = False
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.delenv("HF_REPO_NAME", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return FakeHub


def test_push_is_private_by_default_and_skips_checkpoints(
    fake_hub: type[FakeHub], tmp_path: Path
) -> None:
    cfg = parse_config({"output": {"push_to_hub": True, "hub_repo": "me/tuned"}})
    repo = push_to_hub(cfg, Artifacts(output_dir=tmp_path, is_adapter=True))
    assert repo == "me/tuned"
    (_, init), (_, create), (_, upload) = fake_hub.calls
    assert init == {"token": None}
    assert create == {"repo_id": "me/tuned", "private": True, "exist_ok": True}
    assert upload["folder_path"] == str(tmp_path)
    assert "checkpoint-*" in upload["ignore_patterns"]


def test_push_env_overrides_repo_and_token(
    fake_hub: type[FakeHub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_REPO_NAME", "team/other")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    cfg = parse_config({"output": {"push_to_hub": True, "hub_repo": "me/tuned"}})
    merged = tmp_path / "merged"
    merged.mkdir()  # as save_final leaves it; the push writes its model card there
    push_to_hub(cfg, Artifacts(output_dir=tmp_path, is_adapter=True, merged_dir=merged))
    (_, init), (_, create), (_, upload) = fake_hub.calls
    assert init == {"token": "hf_secret"}
    assert create["repo_id"] == "team/other"
    assert upload["folder_path"] == str(merged)  # the merged model is what a user can load


def test_push_failure_says_where_the_model_is(fake_hub: type[FakeHub], tmp_path: Path) -> None:
    fake_hub.fail = True
    cfg = parse_config({"output": {"push_to_hub": True, "hub_repo": "me/tuned"}})
    with pytest.raises(HubPushError) as err:
        push_to_hub(cfg, Artifacts(output_dir=tmp_path, is_adapter=True))
    assert "connection refused" in str(err.value) and str(tmp_path) in str(err.value)
    assert "hf_" not in json.dumps(str(err.value))


@pytest.fixture
def cuda_machine(monkeypatch: pytest.MonkeyPatch) -> Any:
    """This machine has no GPU: pretend to have one (with bitsandbytes) to check the planning."""
    import trainer.modeling as modeling

    monkeypatch.setattr(modeling, "_cuda_available", lambda: True)
    monkeypatch.setattr(modeling, "_cuda_bf16", lambda: True)
    monkeypatch.setattr(modeling, "_has_package", lambda name: name == "bitsandbytes")
    return modeling


def test_on_a_bf16_gpu_auto_means_bf16_and_qlora_is_4bit_nf4(cuda_machine: Any) -> None:
    import torch

    cfg = parse_config({"adapter": {"kind": "qlora"}})
    plan = cuda_machine.plan_device(cfg)
    assert plan == DevicePlan(device="cuda", precision="bf16", weights_dtype="bfloat16")
    assert cuda_machine.environment_problems(cfg) == []
    quant = cuda_machine.quantization_config(cfg, plan)
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16
    eight = parse_config({"adapter": {"kind": "qlora", "quantization_bits": 8}})
    assert cuda_machine.quantization_config(eight, plan).load_in_8bit


def test_on_an_older_gpu_auto_means_fp16_with_fp32_weights(
    cuda_machine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cuda_machine, "_cuda_bf16", lambda: False)
    plan = cuda_machine.plan_device(parse_config({}))
    assert (plan.precision, plan.weights_dtype) == ("fp16", "float32")
    problems = cuda_machine.environment_problems(parse_config({"training": {"precision": "bf16"}}))
    assert problems == [
        "training.precision: this GPU has no bfloat16 support; use 'auto' or 'fp16'"
    ]


def test_device_cpu_is_honoured_on_a_gpu_machine(cuda_machine: Any, tmp_path: Path) -> None:
    plan = cuda_machine.plan_device(parse_config({"runtime": {"device": "cpu"}}))
    assert plan == CPU
    assert common_args(parse_config({}), plan, tmp_path, has_eval=False)["use_cpu"] is True


def test_launch_on_gpus_uses_accelerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.launch as launch

    monkeypatch.setattr(launch, "_use_gpus", lambda device: True)
    cmd = launch.launch_command(tmp_path / "c.json", "r", 4)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in cmd and cmd[cmd.index("--num_processes") + 1] == "4"
    fsdp = launch.launch_command(tmp_path / "c.json", "r", 4, accelerate_config="fsdp.yaml")
    assert fsdp[fsdp.index("--config_file") + 1] == "fsdp.yaml" and "--multi_gpu" not in fsdp
