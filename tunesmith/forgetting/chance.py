"""Benchmarks the base model answers no better than chance: reported, but left out of the forgetting gate and not
scored after training.

A base model at chance on a benchmark shows no capability there for training to take away: its answers are guesses,
and guesses that flip after training widen the pooled interval and lower the pooled threshold (5% of a lower
accuracy) without adding evidence. SmolLM2-135M answers four of the large tier's eight benchmarks at chance
(WinoGrande 0.49 and BoolQ 0.43 against 0.50, CommonsenseQA 0.23 against 0.20, OpenBookQA 0.16 against 0.25): 1,450
of its 4,081 questions, and a quarter of the time it takes to score a trained model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ALPHA = 0.05  # one-sided: the base model must be shown better than chance to be gated on


@dataclass(frozen=True)
class ChanceCheck:
    name: str
    n: int
    accuracy: float
    chance: float  # the accuracy of guessing uniformly among each question's choices
    p_value: float  # exact binomial test of accuracy > chance

    @property
    def above(self) -> bool:
        return self.p_value < ALPHA

    def text(self) -> str:
        return f"{self.name} {self.accuracy:.2f} (chance {self.chance:.2f}, {self.n} questions, p = {self.p_value:.2g})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"above_chance": self.above, "text": self.text()}


def chance_rate(path: Path, n: int) -> float:
    """Guessing's accuracy over the file's first n questions (lm-eval's `limit` takes the first ones)."""
    choices = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                choices.append(len(json.loads(line)["choices"]))
            if len(choices) == n:
                break
    return sum(1 / k for k in choices) / len(choices)


def check_chance(name: str, path: Path, correct: list[bool]) -> ChanceCheck:
    """Whether the base model answers the benchmark better than guessing. With the choices' number varying between
    questions the guesses' count is Poisson-binomial, with a smaller variance than the binomial of the same mean
    that the test uses: the test is conservative, so a benchmark is gated on only when the evidence is clear."""
    from scipy.stats import binomtest

    chance = chance_rate(path, len(correct))
    right = sum(correct)
    p_value = binomtest(right, len(correct), chance, alternative="greater").pvalue
    return ChanceCheck(name, len(correct), right / len(correct), chance, float(p_value))
