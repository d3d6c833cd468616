"""The ``runpod`` section: a RunPod run is one config file that round-trips and validates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.config import ConfigError, RunConfig, load_config, parse_config
from trainer.config.runpod_section import DEFAULT_POLL_INTERVAL_S

REPO = Path(__file__).resolve().parents[2]


def _runpod_config() -> dict[str, object]:
    return {
        "name": "cloud-sft",
        "method": "sft",
        "model": {"name_or_path": "builtin:tiny-llama"},
        "training": {"max_steps": 4},
        "runtime": {"max_runtime_minutes": 90},
        "runpod": {
            "gpu_type": "NVIDIA A40",
            "gpu_count": 2,
            "cloud": "community",
            "container_disk_gb": 80,
            "volume_id": "vol_abc123",
            "budget_usd": 4.5,
            "grace_minutes": 10,
            "idle_cap_minutes": 20,
            "silence_minutes": 15,
            "poll_interval_s": 2.0,
        },
    }


def test_a_runpod_config_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    path.write_text(json.dumps(_runpod_config()), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.runpod.gpu_type == "NVIDIA A40"
    assert cfg.runpod.cloud == "community"
    assert cfg.runpod.volume_id == "vol_abc123"
    again = parse_config(json.loads(cfg.to_json()))
    assert again == cfg


def test_runpod_defaults_keep_metric_delay_low_and_a_budget() -> None:
    cfg = RunConfig()
    assert cfg.runpod.poll_interval_s == DEFAULT_POLL_INTERVAL_S <= 1.5
    assert cfg.runpod.budget_usd is not None and cfg.runpod.budget_usd > 0
    assert cfg.runpod.image.count(":") == 1  # pinned tag, not :latest
    assert not cfg.runpod.image.endswith(":latest")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gpu_count", 0),
        ("cloud", "private"),
        ("container_disk_gb", 1),
        ("budget_usd", 0),
        ("poll_interval_s", 0.01),
        ("volume_id", "no spaces allowed"),
        ("gpu_typo", "x"),
    ],
)
def test_bad_runpod_values_are_named(field: str, value: object) -> None:
    data = _runpod_config()
    data["runpod"][field] = value  # type: ignore[index]
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert any(p.startswith(f"runpod.{field}") for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(
    "preset", sorted((REPO / "resources" / "presets").glob("*.json")), ids=lambda p: p.stem
)
def test_presets_still_validate_with_the_runpod_section(preset: Path) -> None:
    cfg = load_config(preset)
    assert cfg.runpod.gpu_count >= 1
