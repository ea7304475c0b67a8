"""Deterministic train/validation/test splits, stratified by label when there is one."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from tunesmith.records import Example


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
    member; here such a class simply stays in train. Multi-label examples are split by `iterative_split`.
    """
    if any(e.labels is not None for e in examples):
        return iterative_split(examples, validation, test, seed)
    groups: dict[str | None, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    rng = random.Random(seed)
    splits = Splits([], [], [])
    for label in sorted(groups, key=str):
        group = sorted(groups[label], key=lambda e: e.id)
        rng.shuffle(group)
        # Every class that can spare them gets at least one validation and one test example, so that each
        # class is measured; rounding alone leaves small classes out of held-out splits.
        n_test = max(1, round(len(group) * test)) if test > 0 else 0
        n_val = max(1, round(len(group) * validation)) if validation > 0 else 0
        if n_test + n_val >= len(group):
            n_test, n_val = min(n_test, (len(group) - 1) // 2), min(n_val, (len(group) - 1) // 2)
        splits.test += group[:n_test]
        splits.validation += group[n_test : n_test + n_val]
        splits.train += group[n_test + n_val :]
    for part in (splits.train, splits.validation, splits.test):
        rng.shuffle(part)
    return splits


def iterative_split(examples: list[Example], validation: float, test: float, seed: int) -> Splits:
    """Multi-label splits by iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011): the rarest label
    still to place goes first, each of its examples to the split that most lacks that label (ties go to the split
    with more room, then to the one listed first), so a label with a handful of examples still reaches every
    held-out split and common labels keep their proportions. Examples without labels fill the remaining room.

    Written out here (about 30 lines) rather than taken from scikit-multilearn or iterative-stratification: their
    splitters take a label matrix and fractions for two parts, and ours needs three and a seed-stable order."""
    rng = random.Random(seed)
    fractions = [1 - validation - test, validation, test]
    pending = sorted(examples, key=lambda e: e.id)
    rng.shuffle(pending)
    wanted_rows = [f * len(pending) for f in fractions]
    totals = Counter(label for e in pending for label in e.labels or [])
    wanted = {label: _label_shares(n, fractions) for label, n in totals.items()}
    parts: list[list[Example]] = [[], [], []]

    def place(example: Example, need: list[float]) -> None:
        best = max(range(3), key=lambda j: (need[j], wanted_rows[j], -j) if fractions[j] > 0 else (-1e9, 0, 0))
        parts[best].append(example)
        wanted_rows[best] -= 1
        for label in example.labels or []:
            wanted[label][best] -= 1

    while any(e.labels for e in pending):
        remaining = Counter(label for e in pending for label in e.labels or [])
        rarest = min(remaining, key=lambda label: (remaining[label], label))
        for example in [e for e in pending if rarest in (e.labels or [])]:
            place(example, wanted[rarest])
        pending = [e for e in pending if rarest not in (e.labels or [])]
    for example in pending:  # no labels (or single-label rows mixed in): by room alone
        place(example, wanted_rows)
    for part in parts:
        rng.shuffle(part)
    return Splits(*parts)


def _label_shares(n: int, fractions: list[float]) -> list[float]:
    """How many of a label's n examples each split should get: its share, and at least one in each held-out split
    when the label can spare them (as stratified_split does for a class), so that every label is measured."""
    shares = [f * n for f in fractions]
    held_out = [j for j in (1, 2) if fractions[j] > 0]
    if n >= 1 + len(held_out):
        for j in held_out:
            shares[j] = max(1.0, shares[j])
        shares[0] = n - sum(shares[1:])
    return shares


def label_counts(examples: list[Example]) -> Counter:
    """Examples per label: each label of a multi-label example counts, else the example's label (or category,
    "None" without one)."""
    return Counter(label for e in examples for label in (e.labels if e.labels is not None else [str(e.group)]))


def rows_needed_per_class(validation: float, test: float, min_train: int) -> int:
    """Rows a class needs so that training gets min_train of them and each held-out split at least one."""
    return max(1, min_train) + (validation > 0) + (test > 0)


def split_problems(
    examples: list[Example], labels: list[str] | None, validation: float, test: float, min_train: int
) -> list[str]:
    """Why these examples cannot fill the configured splits (empty when they can), each with what to do."""
    if not examples:
        return []  # reported where the rows were lost
    if not labels:
        needed = 1 + (validation > 0) + (test > 0)
        if len(examples) < needed:
            return [f"{len(examples)} example(s) cannot fill the train, validation and test splits: add examples"]
        return []
    counts = label_counts(examples)
    present = [label for label in labels if counts[label]]
    if len(present) < 2:
        only = f"only class '{present[0]}' has" if present else "no class has"
        return [f"{only} examples: a classifier needs examples of at least two classes (data.labels lists "
                f"{len(labels)})"]  # fmt: skip
    needed = rows_needed_per_class(validation, test, min_train)
    short = [label for label in labels if counts[label] < needed]
    if not short:
        return []
    shown = ", ".join(f"'{label}' has {counts[label]}" for label in short[:10])
    more = f" and {len(short) - 10} more" if len(short) > 10 else ""
    parts = [f"{max(1, min_train)} for training (data.min_examples_per_class)"]
    parts += [f"one for {name}" for name, fraction in (("validation", validation), ("test", test)) if fraction > 0]
    return [
        f"{len(short)} class(es) have too few examples for the splits: {shown}{more}; each needs at least "
        f"{needed} ({', '.join(parts)}). Add examples, remove the class from data.labels, or lower "
        "data.min_examples_per_class"
    ]
