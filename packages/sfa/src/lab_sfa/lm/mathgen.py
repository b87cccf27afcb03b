"""Generated math problems (arithmetic and short word problems) and their exact-match scorer.

The paper's Math domain is GSM8K; here problems are generated from templates so that the answer is known
exactly and the held-out split is disjoint from training by construction (split by a hash of the question).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from lab_shared.errors import LabError

KINDS = ("add", "sub", "mul", "word")
_NAMES = ("Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo")
_ITEMS = ("apples", "coins", "books", "pens", "cards", "shells", "stamps", "marbles")
_NUMBER = re.compile(r"-?\d[\d,]*")


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str

    @property
    def prompt(self) -> str:
        """What the model sees at evaluation; it must continue with ' <answer>' and a newline."""
        return f"Question: {self.question}\nAnswer:"

    @property
    def text(self) -> str:
        """The full training example."""
        return f"{self.prompt} {self.answer}\n"


def _make(rng: random.Random, kind: str, max_value: int) -> Problem:
    a, b = rng.randint(0, max_value), rng.randint(0, max_value)
    if kind == "add":
        return Problem(f"What is {a} + {b}?", str(a + b))
    if kind == "sub":
        a, b = max(a, b), min(a, b)
        return Problem(f"What is {a} - {b}?", str(a - b))
    if kind == "mul":
        b = rng.randint(0, 9)
        return Problem(f"What is {a} * {b}?", str(a * b))
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    form = rng.randrange(3)
    if form == 0:
        return Problem(
            f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have?", str(a + b)
        )
    if form == 1:
        a, b = max(a, b), min(a, b)
        return Problem(f"{name} has {a} {item} and gives away {b}. How many {item} are left?", str(a - b))
    b = rng.randint(1, 9)
    return Problem(f"{name} buys {b} bags with {a} {item} each. How many {item} is that?", str(a * b))


def is_heldout(question: str, test_fraction: float) -> bool:
    """Deterministic split by question hash: the same question always lands in the same split."""
    h = int.from_bytes(hashlib.sha1(question.encode()).digest()[:8], "big")
    return (h % 10_000) < test_fraction * 10_000


def math_splits(
    n_train: int,
    n_test: int,
    seed: int = 0,
    max_value: int = 50,
    kinds: tuple[str, ...] = KINDS,
    test_fraction: float = 0.2,
) -> tuple[list[Problem], list[Problem]]:
    """Unique train and held-out problems; no question appears in both."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise LabError(f"unknown math problem kind(s) {bad or kinds}; choose from {', '.join(KINDS)}")
    if max_value < 1:
        raise LabError(f"math max_value must be >= 1, got {max_value}")
    rng = random.Random(seed)
    seen: set[str] = set()
    train: list[Problem] = []
    test: list[Problem] = []
    for _ in range(50 * (n_train + n_test) + 1000):
        if len(train) >= n_train and len(test) >= n_test:
            return train, test
        p = _make(rng, rng.choice(kinds), max_value)
        if p.question in seen:
            continue
        seen.add(p.question)
        if is_heldout(p.question, test_fraction):
            if len(test) < n_test:
                test.append(p)
        elif len(train) < n_train:
            train.append(p)
    raise LabError(
        f"cannot generate {n_train} + {n_test} distinct math problems with max_value={max_value}; raise it"
    )


def extract_answer(completion: str) -> str | None:
    """The first number on the first line of a model completion, without thousands separators."""
    line = completion.strip().split("\n", 1)[0]
    m = _NUMBER.search(line)
    return m.group(0).replace(",", "") if m else None


def exact_match(completion: str, answer: str) -> bool:
    """True when the completion's first number equals the gold answer (as integers)."""
    pred = extract_answer(completion)
    if pred is None or pred in ("-",):
        return False
    try:
        return int(pred) == int(answer.replace(",", ""))
    except ValueError:
        return False
