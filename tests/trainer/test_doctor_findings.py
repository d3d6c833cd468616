"""Each doctor finding on a crafted dataset that shows it, and on one that does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from trainer.config import parse_config
from trainer.data.readers import Row
from trainer.doctor.findings import (
    Finding,
    duplicates,
    empty_fields,
    kto_balance,
    preference_checks,
    reward_fields,
)
from trainer.doctor.near_dup import near_duplicate_groups
from trainer.doctor.report import run_doctor


def _rows(*data: dict[str, Any]) -> list[Row]:
    return [Row(i, d) for i, d in enumerate(data, start=1)]


def _kinds(findings: list[Finding]) -> dict[str, Finding]:
    return {f.kind: f for f in findings}


def _chat(user: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
    }


# ----------------------------------------------------------------------------- empty fields


def test_empty_and_whitespace_fields_are_named_with_their_lines() -> None:
    rows = _rows(
        _chat("hello", "hi"),
        _chat("   ", "hi"),
        {"instruction": "say", "input": "", "output": "x"},
        _chat("q", "\n\t"),
    )
    found = _kinds(empty_fields(rows))["empty_field"]
    assert found.count == 3 and found.lines == [2, 3, 4]
    assert "messages[].content" in found.detail["fields"] and "input" in found.detail["fields"]


def test_no_empty_field_finding_for_filled_rows() -> None:
    assert empty_fields(_rows(_chat("hello", "hi"), {"text": "some text"})) == []


# ------------------------------------------------------------------------------ duplicates


def test_exact_duplicates_name_both_copies() -> None:
    rows = _rows(_chat("a b c", "d"), _chat("x y z", "w"), _chat("a b c", "d"))
    found = _kinds(duplicates(rows))
    assert found["exact_duplicate"].count == 1 and found["exact_duplicate"].lines == [1, 3]
    assert "near_duplicate" not in found


def test_near_duplicates_by_normalised_text_and_by_minhash() -> None:
    long = "the quick brown fox jumps over the lazy dog near the quiet river bank at dawn " * 3
    rows = _rows(
        _chat("What is the capital of France?", "Paris."),
        _chat("what is the capital of france", "PARIS"),  # same words, other case/punctuation
        _chat("tell me a story", long),
        _chat("tell me a story", long + " again"),  # one word more in a long answer
        _chat("Unrelated question about cats", "Cats sleep a lot."),
    )
    found = _kinds(duplicates(rows))
    assert "exact_duplicate" not in found
    near = found["near_duplicate"]
    assert near.count == 2 and near.lines == [1, 2, 3, 4]


def test_similar_but_different_rows_are_not_near_duplicates() -> None:
    # the demo's shape: one shared system prompt, questions that differ in the one word that
    # matters (the system turn is left out of the comparison)
    rows = _rows(
        _chat("What is the capital of France?", "The capital of France is Paris."),
        _chat("What is the capital of Italy?", "The capital of Italy is Rome."),
        _chat("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    )
    assert duplicates(rows) == []


def test_near_duplicate_cost_is_bounded_by_bucket_cap() -> None:
    # 3,000 identical long texts but for their last word: every row falls in the same buckets
    base = " ".join(f"w{i}" for i in range(60))
    texts = [f"{base} tail{i}" for i in range(3000)]
    groups = near_duplicate_groups(texts)
    assert sum(len(g) for g in groups) >= 2900  # found through the capped buckets


# ------------------------------------------------------------------------ preference pairs


def _pairs(*items: tuple[str, str, str]) -> list[tuple[int, Any, Any, Any]]:
    return [(i, p, c, r) for i, (p, c, r) in enumerate(items, start=1)]


def test_chosen_equal_to_rejected() -> None:
    found = _kinds(preference_checks(_pairs(("q", "same", "Same."), ("q2", "a", "b"))))
    assert found["chosen_equals_rejected"].lines == [1]
    assert "chosen_equals_rejected" not in _kinds(preference_checks(_pairs(("q", "a", "b"))))


def test_contradicting_pairs_for_one_prompt() -> None:
    found = _kinds(preference_checks(_pairs(("q", "A", "B"), ("other", "B", "A"), ("q", "B", "A"))))
    assert found["contradicting_pairs"].count == 1 and found["contradicting_pairs"].lines == [1, 3]
    # the same reversal under different prompts is no contradiction
    clean = preference_checks(_pairs(("q", "A", "B"), ("other", "B", "A")))
    assert "contradicting_pairs" not in _kinds(clean)


def test_length_bias_when_chosen_is_nearly_always_longer() -> None:
    biased = _pairs(*[(f"q{i}", "a long and careful answer", "short") for i in range(25)])
    found = _kinds(preference_checks(biased))["length_bias"]
    assert found.detail["chosen_longer_share"] == 1.0 and found.count == 25
    balanced = _pairs(
        *[
            (f"q{i}", "a long and careful answer", "short")
            if i % 2
            else (f"q{i}", "short", "a long and careless answer")
            for i in range(25)
        ]
    )
    assert "length_bias" not in _kinds(preference_checks(balanced))


# ------------------------------------------------------------------------------------- KTO


def test_kto_imbalance_against_trl_guidance() -> None:
    labels = [(i, i <= 10) for i in range(1, 41)]  # 10 desirable, 30 undesirable
    found = kto_balance(labels, 1.0, 1.0)[0]
    assert found.kind == "kto_imbalance" and found.detail["weighted_ratio"] == pytest.approx(
        1 / 3, abs=1e-3
    )
    assert "desirable_weight in [3.00, 3.99]" in found.hint and "kto_trainer" in found.hint
    assert "undesirable_weight in [0.25, 0.33]" in found.hint
    # the weights the hint suggests bring it into range: no finding
    assert kto_balance(labels, 3.0, 1.0) == []
    assert kto_balance([(1, True), (2, False)], 1.0, 1.0) == []


def test_kto_one_sided_labels_are_an_error() -> None:
    found = kto_balance([(1, True), (2, True)], 1.0, 1.0)[0]
    assert found.severity == "error" and "undesirable" in found.message


# ------------------------------------------------------------------------------------ GRPO


def test_rows_lacking_what_a_reward_reads(tmp_path: Path) -> None:
    examples = [(1, {"prompt": "p", "reference": "r"}), (2, {"prompt": "p", "reference": None})]
    found = reward_fields(examples, {"match_reference": ("reference",)})
    assert found[0].kind == "missing_reward_field" and found[0].lines == [2]
    assert reward_fields(examples[:1], {"match_reference": ("reference",)}) == []
    assert reward_fields(examples, {"length": ()}) == []


def test_grpo_user_reward_columns_come_from_its_signature(tmp_path: Path) -> None:
    reward = tmp_path / "my_reward.py"
    reward.write_text(
        "def score(completions, topic, **kwargs):\n    return [1.0 for _ in completions]\n",
        encoding="utf-8",
    )
    data = tmp_path / "prompts.jsonl"
    data.write_text(
        json.dumps({"prompt": "a", "topic": "cats"}) + "\n" + json.dumps({"prompt": "b"}) + "\n",
        encoding="utf-8",
    )
    cfg = parse_config(
        {
            "version": 1,
            "name": "g",
            "method": "grpo",
            "model": {"name_or_path": "builtin:tiny-llama"},
            "dataset": {"path": str(data)},
            "grpo": {"reward_functions": [f"{reward}:score", "length"]},
        }
    )
    report = run_doctor(cfg, base_dir=tmp_path, sample=1)
    found = _kinds(report.findings)["missing_reward_field"]
    assert found.lines == [2] and found.detail["column"] == "topic"
    assert report.samples[0].part == "prompt" and not any(report.samples[0].enc.trained)


# --------------------------------------------------------------- the verb, end to end (JSON)


def _doctor_json(config: dict[str, Any], tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "doctor", "--config", str(path), "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.slow  # a subprocess that imports transformers and TRL: about 20 s on two cores
def test_doctor_json_on_the_demo_has_no_truncation(tmp_path: Path) -> None:
    demo = json.loads((REPO_ROOT / "resources/presets/demo-sft.json").read_text())
    code, events = _doctor_json(demo, tmp_path)
    assert code == 0
    assert events[0] == {"event": "progress", "done": 0, "total": 64}
    result = events[-1]
    assert result["event"] == "result" and result["rows"] == 64
    assert result["truncated"] == 0 and result["dropped"] == 0
    assert not {"truncated", "no_trained_token"} & {f["kind"] for f in result["findings"]}
    assert sum(result["histogram"]["counts"]) == 64
    first = result["samples"][0]
    assert first["line"] == 1 and any(s["trained"] for s in first["segments"])
    assert any(not s["trained"] for s in first["segments"])


def test_doctor_json_error_event_names_the_file(tmp_path: Path) -> None:
    demo = json.loads((REPO_ROOT / "resources/presets/demo-sft.json").read_text())
    demo["dataset"]["path"] = str(tmp_path / "missing.jsonl")
    code, events = _doctor_json(demo, tmp_path)
    assert code == 2 and len(events) == 1
    assert events[0]["event"] == "error" and "missing.jsonl" in events[0]["message"]


def test_no_cut_findings_when_every_row_fits(tmp_path: Path) -> None:
    data = tmp_path / "pc.jsonl"
    rows = [{"prompt": f"Question {i}?", "completion": f" Answer {i}."} for i in range(5)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = parse_config(
        {
            "version": 1,
            "name": "fits",
            "method": "sft",
            "model": {"name_or_path": "builtin:tiny-llama"},
            "dataset": {"path": str(data)},
            "training": {"max_length": 256},
        }
    )
    report = run_doctor(cfg, base_dir=tmp_path, sample=2)
    assert report.truncated == 0 and report.dropped == 0 and report.findings == []
    assert report.histogram["over_max_length"] == 0 and len(report.samples) == 2


def test_near_duplicate_signatures_are_the_same_in_every_process() -> None:
    """The same file gives the same findings every run: nothing hangs on Python's per-process
    string hashes."""
    import os
    import subprocess
    import sys

    script = (
        "from trainer.doctor.near_dup import normalised_words, signatures\n"
        "texts = ['the quick brown fox jumps over the lazy dog', 'caf\u00e9 au lait s il vous']\n"
        "print(signatures([normalised_words(t)[1] for t in texts]).tolist())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
