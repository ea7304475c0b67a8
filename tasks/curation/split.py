"""Deterministic train/validation/test splits, stratified by label when there is one."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tasks.curation.records import Example


@dataclass
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def stratified_split(examples: list[Example], validation: float, test: float, seed: int) -> Splits:
    """Split each label (or category) group by the same fractions, so every split keeps the class proportions.

    Written by hand rather than with sklearn's train_test_split, which refuses classes with a single
    member; here such a class simply stays in train.
    """
    groups: dict[str | None, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    rng = random.Random(seed)
    splits = Splits([], [], [])
    for label in sorted(groups, key=str):
        group = sorted(groups[label], key=lambda e: e.id)
        rng.shuffle(group)
        n_test = round(len(group) * test)
        n_val = round(len(group) * validation)
        if n_test + n_val >= len(group):
            n_test, n_val = min(n_test, (len(group) - 1) // 2), min(n_val, (len(group) - 1) // 2)
        splits.test += group[:n_test]
        splits.validation += group[n_test : n_test + n_val]
        splits.train += group[n_test + n_val :]
    for part in (splits.train, splits.validation, splits.test):
        rng.shuffle(part)
    return splits
