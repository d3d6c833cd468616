"""Rows shaped for each method's TRL trainer, the seeded split, and a run's whole data path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainer.config import parse_config
from trainer.data import (
    DatasetError,
    load_reward_data,
    load_run_data,
    prepare_rows,
    split_rows,
)
from trainer.data.readers import Row


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ sft


def test_sft_chat_prompt_is_everything_before_the_last_assistant_turn() -> None:
    turns = [system("Be brief."), user("Hi"), bot("Hello"), user("2+2?"), bot("4"), user("ok")]
    (out,) = prepare_rows([{"messages": turns}], "messages", "sft")
    assert out == {"prompt": turns[:4], "completion": [bot("4")]}


def test_sft_sharegpt_becomes_messages() -> None:
    conv = [
        {"from": "system", "value": "S"},
        {"from": "human", "value": "Q"},
        {"from": "gpt", "value": "A"},
    ]
    (out,) = prepare_rows([{"conversations": conv}], "sharegpt", "sft")
    assert out == {"prompt": [system("S"), user("Q")], "completion": [bot("A")]}


def test_sft_alpaca_joins_instruction_and_input_with_a_blank_line() -> None:
    rows = [
        {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
        {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        {"instruction": "Say hi.", "output": "Hi.", "system": "Be nice."},
    ]
    out = prepare_rows(rows, "alpaca", "sft")
    assert out[0] == {
        "prompt": [user("Translate to French.\n\ncat")],
        "completion": [bot("chat")],
    }
    assert out[1]["prompt"] == [user("Name a colour.")]
    assert out[2]["prompt"] == [system("Be nice."), user("Say hi.")]


def test_sft_text_and_prompt_completion_stay_as_given() -> None:
    assert prepare_rows([{"text": "a b", "id": 3}], "text", "sft") == [{"text": "a b"}]
    row = {"prompt": "The sky is", "completion": " blue."}
    assert prepare_rows([row], "prompt_completion", "sft") == [row]


def test_one_conversational_row_makes_every_row_conversational() -> None:
    rows = [
        {"prompt": "Q1", "completion": "A1"},
        {"prompt": [user("Q2")], "completion": "A2"},
    ]
    out = prepare_rows(rows, "prompt_completion", "sft")
    assert out == [
        {"prompt": [user("Q1")], "completion": [bot("A1")]},
        {"prompt": [user("Q2")], "completion": [bot("A2")]},
    ]


def test_a_conversation_without_an_assistant_turn_names_its_line() -> None:
    rows = [
        Row(1, {"messages": [user("Q"), bot("A")]}),
        Row(7, {"messages": [system("S"), user("Q")]}),
        Row(9, {"messages": [bot("Hello, nothing asked")]}),
    ]
    with pytest.raises(DatasetError) as info:
        prepare_rows(rows, "messages", "sft", source="chat.jsonl")
    err = info.value
    assert err.problems == [
        'line 7, field "messages": no assistant turn to learn from',
        'line 9, field "messages": the assistant turn has no turn before it to answer',
    ]
    assert err.source == "chat.jsonl" and "assistant turn" in err.hint


def test_cpt_takes_text() -> None:
    assert prepare_rows([{"text": "doc"}], "text", "cpt") == [{"text": "doc"}]


# --------------------------------------------------------------------------- preferences


def test_dpo_keeps_an_explicit_prompt() -> None:
    row = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    assert prepare_rows([row], "preference", "dpo") == [row]
    assert prepare_rows([row], "preference", "orpo") == [row]


def test_dpo_takes_an_implicit_prompt_from_the_shared_turns() -> None:
    row = {
        "chosen": [user("Sky colour?"), bot("Blue.")],
        "rejected": [user("Sky colour?"), bot("Green.")],
    }
    assert prepare_rows([row], "preference", "dpo") == [
        {"prompt": [user("Sky colour?")], "chosen": [bot("Blue.")], "rejected": [bot("Green.")]}
    ]


def test_dpo_implicit_text_prompt_is_cut_at_a_word() -> None:
    row = {"chosen": "Q: colour of the sky? A: blue", "rejected": "Q: colour of the sky? A: black"}
    (out,) = prepare_rows([row], "preference", "dpo")
    assert out == {"prompt": "Q: colour of the sky? A:", "chosen": " blue", "rejected": " black"}


def test_dpo_string_prompt_with_conversational_answers() -> None:
    row = {"prompt": "Q", "chosen": [bot("good")], "rejected": [bot("bad")]}
    (out,) = prepare_rows([row], "preference", "dpo")
    assert out == {"prompt": [user("Q")], "chosen": [bot("good")], "rejected": [bot("bad")]}


def test_a_pair_with_no_prompt_to_find_names_its_line() -> None:
    rows = [Row(4, {"chosen": "Yes.", "rejected": "No."})]
    with pytest.raises(DatasetError) as info:
        prepare_rows(rows, "preference", "dpo")
    assert info.value.problems[0].startswith('line 4, fields "chosen"/"rejected": no "prompt"')


def test_kto_rows_get_bool_labels() -> None:
    rows = [
        {"prompt": "Q", "completion": "A", "label": "true"},
        {"prompt": "Q", "completion": "B", "label": "False"},
    ]
    out = prepare_rows(rows, "kto", "kto")
    assert [r["label"] for r in out] == [True, False]
    assert out[0] == {"prompt": "Q", "completion": "A", "label": True}


def test_kto_from_pairs_gives_one_desirable_and_one_undesirable_row() -> None:
    row = {"prompt": [user("Q")], "chosen": [bot("good")], "rejected": [bot("bad")]}
    assert prepare_rows([row], "preference", "kto") == [
        {"prompt": [user("Q")], "completion": [bot("good")], "label": True},
        {"prompt": [user("Q")], "completion": [bot("bad")], "label": False},
    ]


# ------------------------------------------------------------------------------ policies


def test_grpo_prompt_rows_keep_their_extras() -> None:
    row = {"prompt": [user("2+2?")], "reference": "4", "difficulty": 1}
    assert prepare_rows([row], "prompt", "grpo") == [row]


@pytest.mark.parametrize(
    ("fmt", "row", "expected"),
    [
        (
            "messages",
            {"messages": [system("S"), user("Q"), bot("A")]},
            {"prompt": [system("S"), user("Q")], "reference": "A"},
        ),
        (
            "messages",
            {"messages": [user("Q")]},  # prompts only: the whole conversation asks
            {"prompt": [user("Q")], "reference": None},
        ),
        (
            "alpaca",
            {"instruction": "Add.", "input": "2 2", "output": "4"},
            {"prompt": [user("Add.\n\n2 2")], "reference": "4"},
        ),
        (
            "prompt_completion",
            {"prompt": "2+2=", "completion": "4"},
            {"prompt": "2+2=", "reference": "4"},
        ),
    ],
)
def test_grpo_prompts_carry_the_reference_answer(
    fmt: str, row: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert prepare_rows([row], fmt, "grpo") == [expected]


def test_rlhf_policy_and_reward_rows_from_pairs() -> None:
    row = {"prompt": [user("Q")], "chosen": [bot("good")], "rejected": [bot("bad")]}
    assert prepare_rows([row], "preference", "rlhf", "policy") == [
        {"prompt": [user("Q")], "reference": "good"}
    ]
    assert prepare_rows([row], "preference", "rlhf") == prepare_rows(
        [row], "preference", "rlhf", "policy"
    )
    assert prepare_rows([row], "preference", "rlhf", "reward") == [
        {"chosen": [user("Q"), bot("good")], "rejected": [user("Q"), bot("bad")]}
    ]
    text = {"prompt": "Q:", "chosen": " good", "rejected": " bad"}
    assert prepare_rows([text], "preference", "rlhf", "reward") == [
        {"chosen": "Q: good", "rejected": "Q: bad"}
    ]


def test_reward_pairs_need_preference_rows() -> None:
    with pytest.raises(DatasetError, match='to train its reward model; this file is "prompt"'):
        prepare_rows([{"prompt": "Q"}], "prompt", "rlhf", "reward")


def test_prepared_rows_load_into_arrow_for_every_demo_file(repo_root: Path) -> None:
    datasets = pytest.importorskip("datasets")
    cases = {
        "chat": ["sft", "grpo"],
        "sharegpt": ["sft", "grpo"],
        "alpaca": ["sft", "grpo"],
        "text": ["sft", "cpt"],
        "prompt-completion": ["sft", "grpo"],
        "prompts": ["grpo"],
        "preference": ["dpo", "orpo", "kto", "rlhf"],
        "kto": ["kto"],
    }
    from trainer.data import detect_format, read_rows

    for name, methods in cases.items():
        rows = read_rows(str(repo_root / f"resources/datasets/demo-{name}.jsonl"))
        fmt = detect_format(rows)
        for method in methods:
            ds = datasets.Dataset.from_list(prepare_rows(rows, fmt, method))
            assert len(ds) >= len(rows), (name, method)


# ---------------------------------------------------------------------------------- split


def test_split_is_seeded_disjoint_and_complete() -> None:
    items = list(range(100))
    train, held = split_rows(items, eval_fraction=0.1, seed=1)
    assert (train, held) == split_rows(items, eval_fraction=0.1, seed=1)
    assert split_rows(items, eval_fraction=0.1, seed=2) != (train, held)
    assert len(held) == 10 and len(train) == 90
    assert not set(train) & set(held) and sorted(train + held) == items
    assert train != sorted(train)  # shuffled


def test_split_keeps_at_least_one_row_on_each_side() -> None:
    assert [len(p) for p in split_rows([1, 2, 3], eval_fraction=0.01, seed=0)] == [2, 1]
    assert [len(p) for p in split_rows([1, 2], eval_fraction=0.5, seed=0)] == [1, 1]
    assert split_rows([1], eval_fraction=0.5, seed=0) == ([1], [])
    assert split_rows([1, 2, 3], eval_fraction=0.0, seed=0)[1] == []


def test_split_without_shuffle_holds_out_the_tail() -> None:
    assert split_rows(list(range(10)), eval_fraction=0.2, seed=0, shuffle=False) == (
        list(range(8)),
        [8, 9],
    )


def test_max_samples_applies_after_shuffling() -> None:
    items = list(range(1000))
    train, held = split_rows(items, eval_fraction=0.1, seed=3, max_samples=50)
    assert len(train) + len(held) == 50
    assert max(train + held) > 50  # taken from the shuffled whole, not the first 50


# ------------------------------------------------------------------------------- run data


def config(path: Path | str, method: str = "sft", **dataset: Any) -> Any:
    return parse_config({"method": method, "dataset": {"path": str(path), **dataset}})


def chat_rows(n: int) -> list[dict[str, Any]]:
    return [{"messages": [user(f"Q{i}"), bot(f"A{i}")]} for i in range(n)]


def test_load_run_data_reads_checks_splits_and_prepares(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", chat_rows(20))
    data = load_run_data(config("d.jsonl", eval_fraction=0.2, seed=5), base_dir=tmp_path)
    assert data.fmt == "messages" and data.source == "d.jsonl"
    assert len(data.train) == 16 and data.eval is not None and len(data.eval) == 4
    assert data.train[0].keys() == {"prompt", "completion"}
    again = load_run_data(config("d.jsonl", eval_fraction=0.2, seed=5), base_dir=tmp_path)
    assert again.train == data.train


def test_no_eval_when_the_fraction_is_zero(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", chat_rows(5))
    data = load_run_data(config(tmp_path / "d.jsonl", eval_fraction=0.0))
    assert data.eval is None and len(data.train) == 5


def test_eval_path_is_read_instead_of_holding_rows_out(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", chat_rows(10))
    write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "Q", "completion": "A"}] * 3)
    data = load_run_data(
        config(tmp_path / "train.jsonl", eval_path=str(tmp_path / "eval.jsonl"), max_samples=6)
    )
    assert len(data.train) == 6
    assert data.eval == [{"prompt": "Q", "completion": "A"}] * 3
    assert data.eval_source == str(tmp_path / "eval.jsonl")


def test_method_mismatch_stops_the_run_before_any_model(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", chat_rows(4))
    with pytest.raises(DatasetError) as info:
        load_run_data(config(tmp_path / "d.jsonl", method="dpo"))
    assert info.value.problems == [
        'dpo needs preference rows with "chosen" and "rejected"; this file is "messages"'
    ]


def test_declared_format_mismatch(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", chat_rows(2))
    with pytest.raises(DatasetError) as info:
        load_run_data(config(tmp_path / "d.jsonl", format="alpaca"))
    assert info.value.problems[0] == (
        'line 1, field "instruction": missing (the row looks like "messages")'
    )
    assert 'set it to "messages" or "auto"' in info.value.hint


def test_kto_pairs_never_straddle_train_and_eval(tmp_path: Path) -> None:
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(30)]
    write_jsonl(tmp_path / "p.jsonl", rows)
    data = load_run_data(config(tmp_path / "p.jsonl", method="kto", eval_fraction=0.2))
    assert data.eval is not None
    assert len(data.train) == 48 and len(data.eval) == 12
    train_prompts = {r["prompt"] for r in data.train}
    assert not train_prompts & {r["prompt"] for r in data.eval}


def test_dataset_url_environment_replaces_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(tmp_path / "uploaded.jsonl", [{"text": "from the launcher"}] * 2)
    monkeypatch.setenv("DATASET_URL", str(tmp_path / "uploaded.jsonl"))
    data = load_run_data(config("somewhere/else.jsonl", method="cpt", eval_fraction=0.0))
    assert data.train == [{"text": "from the launcher"}] * 2


def test_rlhf_reward_pairs_come_from_the_run_dataset_or_their_own(tmp_path: Path) -> None:
    pairs = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(10)]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"P{i}"} for i in range(4)])

    cfg = config(tmp_path / "pairs.jsonl", method="rlhf", eval_fraction=0.2)
    reward = load_reward_data(cfg)
    assert len(reward.train) == 8 and reward.eval is not None and len(reward.eval) == 2
    assert reward.train[0]["chosen"].startswith("Q") and "prompt" not in reward.train[0]
    assert load_run_data(cfg).train[0].keys() == {"prompt", "reference"}

    # prompts alone are enough when the pairs come from rlhf.reward_dataset
    cfg = parse_config(
        {
            "method": "rlhf",
            "dataset": {"path": str(tmp_path / "prompts.jsonl"), "eval_fraction": 0.0},
            "rlhf": {"reward_dataset": str(tmp_path / "pairs.jsonl")},
        }
    )
    assert [r["prompt"] for r in load_run_data(cfg).train] != []
    assert load_reward_data(cfg).source == str(tmp_path / "pairs.jsonl")

    # and without a reward dataset or model, prompts alone are refused
    with pytest.raises(DatasetError, match="rlhf needs preference rows"):
        load_run_data(config(tmp_path / "prompts.jsonl", method="rlhf"))


def test_kto_csv_labels_written_as_words_become_bools(tmp_path: Path) -> None:
    f = tmp_path / "kto.csv"
    f.write_text(
        'prompt,completion,label\nQ1,good,true\nQ2,bad,FALSE\nQ3,"fine, thanks",True\n',
        encoding="utf-8",
    )
    data = load_run_data(config(f, method="kto", eval_fraction=0.0, shuffle=False))
    assert data.fmt == "kto"
    assert [(r["completion"], r["label"]) for r in data.train] == [
        ("good", True),
        ("bad", False),
        ("fine, thanks", True),
    ]
