"""Write the demo datasets in resources/datasets/ (one small file per row format).

    .venv/bin/python scripts/make_demo_datasets.py          # rewrite the files
    .venv/bin/python scripts/make_demo_datasets.py --check  # exit 1 when a file is stale

The files are generated: edit this script, not them (tests/trainer/test_data_demo.py checks they
match). Everything is deterministic. The answers are short and follow a few fixed patterns so
that even the built-in tiny model's SFT loss falls within a few dozen steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "resources" / "datasets"
SYSTEM = "You are a helpful assistant. Answer in one short sentence."

CAPITALS = [
    ("France", "Paris"),
    ("Spain", "Madrid"),
    ("Italy", "Rome"),
    ("Germany", "Berlin"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Poland", "Warsaw"),
    ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"),
    ("Austria", "Vienna"),
    ("Chile", "Santiago"),
]
OPPOSITES = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("day", "night"),
    ("open", "closed"),
    ("happy", "sad"),
    ("light", "dark"),
    ("wet", "dry"),
    ("early", "late"),
    ("full", "empty"),
    ("hard", "soft"),
    ("loud", "quiet"),
    ("high", "low"),
    ("first", "last"),
    ("young", "old"),
]
SOUNDS = [
    ("cow", "moo"),
    ("dog", "woof"),
    ("cat", "meow"),
    ("duck", "quack"),
    ("sheep", "baa"),
    ("pig", "oink"),
    ("horse", "neigh"),
    ("owl", "hoot"),
    ("lion", "roar"),
    ("frog", "ribbit"),
    ("bee", "buzz"),
    ("snake", "hiss"),
    ("mouse", "squeak"),
    ("crow", "caw"),
    ("goat", "bleat"),
    ("rooster", "crow"),
]
SUMS = [
    (2, 3),
    (4, 4),
    (1, 6),
    (5, 2),
    (3, 3),
    (7, 1),
    (6, 3),
    (2, 8),
    (9, 0),
    (4, 5),
    (8, 2),
    (3, 7),
    (6, 6),
    (5, 5),
    (7, 4),
    (9, 3),
]
COLORS = [
    ("the sky on a clear day", "The sky is blue."),
    ("grass", "Grass is green."),
    ("snow", "Snow is white."),
    ("coal", "Coal is black."),
    ("a ripe banana", "A ripe banana is yellow."),
    ("a ripe tomato", "A ripe tomato is red."),
    ("an orange", "An orange is orange."),
    ("a lemon", "A lemon is yellow."),
    ("milk", "Milk is white."),
    ("a strawberry", "A strawberry is red."),
    ("a frog", "A frog is green."),
    ("the sea", "The sea is blue."),
    ("chocolate", "Chocolate is brown."),
    ("a carrot", "A carrot is orange."),
    ("an eggplant", "An eggplant is purple."),
    ("a crow", "A crow is black."),
]
LEGS = [
    ("a spider", 8),
    ("a dog", 4),
    ("a bird", 2),
    ("an ant", 6),
    ("a cat", 4),
    ("a horse", 4),
    ("a chicken", 2),
    ("a bee", 6),
    ("an octopus", 8),
    ("a cow", 4),
    ("a duck", 2),
    ("a beetle", 6),
    ("a sheep", 4),
    ("a person", 2),
    ("a scorpion", 8),
    ("a frog", 4),
]
FRENCH = [
    ("cat", "chat"),
    ("dog", "chien"),
    ("house", "maison"),
    ("water", "eau"),
    ("bread", "pain"),
    ("apple", "pomme"),
    ("book", "livre"),
    ("sun", "soleil"),
]
PLURALS = [
    ("mouse", "mice"),
    ("child", "children"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("man", "men"),
    ("goose", "geese"),
    ("person", "people"),
    ("leaf", "leaves"),
]
REVERSE = ["stone", "apple", "river", "cloud", "tiger", "lemon", "piano", "robot"]
FACTS = [
    ("Name the largest planet in the solar system.", "Jupiter."),
    ("Name the star closest to Earth.", "The Sun."),
    ("Say what water is made of.", "Hydrogen and oxygen."),
    ("Name the fastest land animal.", "The cheetah."),
    ("Say how many days are in a week.", "Seven."),
    ("Say how many continents there are.", "Seven."),
    ("Name the gas that plants take in.", "Carbon dioxide."),
    ("Say what frozen water is called.", "Ice."),
]
TEXTS = [
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "A week has seven days, and a year has twelve months.",
    "Bees make honey from the nectar of flowers.",
    "The moon goes around the Earth about once a month.",
    "Plants use sunlight to turn water and air into sugar.",
    "Ice is water that has frozen into a solid.",
    "The heart pumps blood through the body.",
    "Rain falls when water drops in clouds grow heavy.",
    "Cats sleep for many hours each day.",
    "A triangle has three sides and three corners.",
    "The ocean covers most of the surface of the Earth.",
    "Birds build nests to keep their eggs safe.",
    "Snow falls when the air is cold enough to freeze water.",
    "A square has four equal sides.",
    "Trees grow a new ring of wood every year.",
    "Sound travels faster in water than in air.",
    "The Earth goes around the sun once a year.",
    "Fish breathe through their gills.",
    "A rainbow appears when sunlight shines through rain.",
    "Wind is air that moves from one place to another.",
    "The desert gets very little rain.",
    "Mountains are high and often have snow on top.",
    "A clock has an hour hand and a minute hand.",
    "Bread is made from flour, water and yeast.",
    "Milk comes from cows, goats and sheep.",
    "Spiders spin webs to catch insects.",
    "The night sky is full of stars.",
    "Rivers flow from the hills down to the sea.",
    "Leaves turn yellow and red in autumn.",
    "Frogs start life as tadpoles in water.",
    "A circle has no corners at all.",
    "Lightning is a giant spark of electricity.",
    "Penguins are birds that cannot fly but swim well.",
    "Salt water is found in the sea.",
    "An hour has sixty minutes.",
    "Owls hunt at night and sleep during the day.",
    "Sugar dissolves in warm water.",
    "The Arctic is cold all year round.",
    "Honey never goes bad if it is kept sealed.",
]
RUDE = [
    "I don't feel like answering that.",
    "Look it up yourself.",
    "Why would I tell you?",
    "That is a boring question.",
]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def qa_pairs() -> list[tuple[str, str, str]]:
    """(question, right answer, wrong answer): 16 each of capitals, opposites, animal sounds
    and sums, interleaved so any slice holds every kind."""
    groups: list[list[tuple[str, str, str]]] = [
        [
            (
                f"What is the capital of {country}?",
                f"The capital of {country} is {city}.",
                f"The capital of {country} is {CAPITALS[(i + 5) % 16][1]}.",
            )
            for i, (country, city) in enumerate(CAPITALS)
        ],
        [
            (f"What is the opposite of {a}?", f"The opposite of {a} is {b}.", f"It is {a}.")
            for a, b in OPPOSITES
        ],
        [
            (
                f"What sound does a {animal} make?",
                f"A {animal} says {sound}.",
                f"A {animal} says {SOUNDS[(i + 3) % 16][1]}.",
            )
            for i, (animal, sound) in enumerate(SOUNDS)
        ],
        [
            (f"What is {a} + {b}?", f"{a} + {b} = {a + b}.", f"{a} + {b} = {a + b + 3}.")
            for a, b in SUMS
        ],
    ]
    return [g[i] for i in range(16) for g in groups]


def demo_chat() -> list[dict[str, Any]]:
    rows = []
    for i, (q, a, _) in enumerate(qa_pairs()):
        messages = [user(q), bot(a)]
        if i % 8 == 0:
            messages.insert(0, {"role": "system", "content": SYSTEM})
        if i % 10 == 3:
            messages[:0] = [user("Hi!"), bot("Hello! Ask me anything.")]
        rows.append({"messages": messages})
    return rows


def demo_sharegpt() -> list[dict[str, Any]]:
    rows = []
    for i in range(16):
        thing, color = COLORS[i]
        animal, legs = LEGS[i]
        first: list[dict[str, str]] = [
            {"from": "human", "value": f"What color is {thing}?"},
            {"from": "gpt", "value": color},
        ]
        if i % 4 == 0:
            first.insert(0, {"from": "system", "value": SYSTEM})
        rows.append({"conversations": first})
        rows.append(
            {
                "conversations": [
                    {"from": "human", "value": f"How many legs does {animal} have?"},
                    {"from": "gpt", "value": f"{animal.capitalize()} has {legs} legs."},
                ]
            }
        )
    return rows


def demo_alpaca() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(8):
        en, fr = FRENCH[i]
        rows.append({"instruction": "Translate the word into French.", "input": en, "output": fr})
        one, many = PLURALS[i]
        rows.append({"instruction": "Give the plural of the noun.", "input": one, "output": many})
        word = REVERSE[i]
        rows.append(
            {"instruction": "Spell the word backwards.", "input": word, "output": word[::-1]}
        )
        q, a = FACTS[i]
        rows.append({"instruction": q, "input": "", "output": a})
    return rows


def demo_text() -> list[dict[str, Any]]:
    return [{"text": t} for t in TEXTS]


def demo_prompt_completion() -> list[dict[str, Any]]:
    rows = []
    for (country, city), (a, b) in zip(CAPITALS, OPPOSITES, strict=True):
        rows.append({"prompt": f"The capital of {country} is", "completion": f" {city}."})
        rows.append({"prompt": f"The opposite of {a} is", "completion": f" {b}."})
    return rows


def demo_prompts() -> list[dict[str, Any]]:
    rows = []
    for i, (a, b) in enumerate(SUMS):
        rows.append(
            {
                "prompt": [user(f"What is {a} + {b}? Reply with just the number.")],
                "reference": str(a + b),
            }
        )
        country, city = CAPITALS[i]
        rows.append(
            {
                "prompt": [user(f"What is the capital of {country}? Reply with one word.")],
                "reference": city,
            }
        )
    return rows


def demo_preference() -> list[dict[str, Any]]:
    rows = []
    for i, (q, right, wrong) in enumerate(qa_pairs()[:48]):
        bad = RUDE[(i // 2) % len(RUDE)] if i % 2 else wrong
        rows.append({"prompt": [user(q)], "chosen": [bot(right)], "rejected": [bot(bad)]})
    return rows


def demo_kto() -> list[dict[str, Any]]:
    rows = []
    for i, (q, right, wrong) in enumerate(qa_pairs()[:48]):
        good = i % 2 == 0
        bad = RUDE[(i // 2) % len(RUDE)] if i % 4 == 1 else wrong
        rows.append(
            {"prompt": [user(q)], "completion": [bot(right if good else bad)], "label": good}
        )
    return rows


FILES = {
    "demo-chat.jsonl": demo_chat,
    "demo-sharegpt.jsonl": demo_sharegpt,
    "demo-alpaca.jsonl": demo_alpaca,
    "demo-text.jsonl": demo_text,
    "demo-prompt-completion.jsonl": demo_prompt_completion,
    "demo-prompts.jsonl": demo_prompts,
    "demo-preference.jsonl": demo_preference,
    "demo-kto.jsonl": demo_kto,
}


def render(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--out", type=Path, default=OUT, help="folder to write to")
    ns = parser.parse_args(argv)
    stale = []
    for name, make in FILES.items():
        path = ns.out / name
        text = render(make())
        if ns.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"{path}: {len(text.splitlines())} rows, {len(text.encode())} bytes")
    if stale:
        print("stale: " + ", ".join(stale) + " (run scripts/make_demo_datasets.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
