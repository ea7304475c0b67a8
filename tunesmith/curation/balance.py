"""Class balance: the distribution report and the none / cap / oversample strategies (training split only)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from tunesmith.curation.records import copy_of
from tunesmith.records import Example


@dataclass
class BalanceResult:
    strategy: str
    before: dict[str, int]
    after: dict[str, int]
    imbalance_ratio: float  # largest class / smallest class, before balancing
    examples: list[Example]
    dropped: list[Example] = field(default_factory=list)  # capped away (recorded as rejects)
    added: int = 0  # oversampled copies
    warnings: list[str] = field(default_factory=list)


def distribution(examples: list[Example]) -> dict[str, int]:
    """Examples per class: per label for multi-label examples (each of an example's labels counts)."""
    counts = Counter(e.group for e in examples if e.group is not None)
    counts += Counter(label for e in examples for label in e.labels or [])
    return dict(sorted(counts.items()))


def balance(
    examples: list[Example], strategy: str, cap_ratio: float = 3.0, warn_ratio: float = 10.0, seed: int = 0
) -> BalanceResult:
    """Balance by label (or category); examples without one pass through untouched.

    cap: classes larger than cap_ratio x the smallest class are randomly cut down to that size;
    oversample: smaller classes are topped up with random repeats to the size of the largest.
    """
    before = distribution(examples)
    ratio = max(before.values()) / min(before.values()) if before else 1.0
    warnings = []
    if ratio > warn_ratio:
        largest, smallest = max(before, key=before.get), min(before, key=before.get)
        warnings.append(
            f"class imbalance {ratio:.1f}:1 ({largest}: {before[largest]}, {smallest}: {before[smallest]}) exceeds "
            f"{warn_ratio:g}:1; a model trained on it tends to predict the majority class. "
            "Consider data.balance.strategy: cap or oversample, or collect more minority examples."
        )
    if strategy == "none" or not before:
        return BalanceResult(strategy, before, before, ratio, list(examples), warnings=warnings)
    if any(e.labels is not None for e in examples):
        kept, dropped, added = _balance_label_sets(examples, strategy, cap_ratio, random.Random(seed))
        return BalanceResult(strategy, before, distribution(kept), ratio, kept, dropped, added, warnings)
    rng = random.Random(seed)
    groups: dict[str | None, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    kept: list[Example] = list(groups.pop(None, []))
    dropped: list[Example] = []
    added = 0
    if strategy == "cap":
        limit = int(cap_ratio * min(before.values()))
        for group in groups.values():
            if len(group) > limit:
                chosen = set(rng.sample(range(len(group)), limit))
                kept += [e for i, e in enumerate(group) if i in chosen]
                dropped += [e for i, e in enumerate(group) if i not in chosen]
            else:
                kept += group
    elif strategy == "oversample":
        target = max(before.values())
        for group in groups.values():
            extra = [copy_of(rng.choice(group), k) for k in range(1, target - len(group) + 1)]
            kept += group + extra
            added += len(extra)
    else:
        raise ValueError(f"unknown balancing strategy {strategy!r}")
    rng.shuffle(kept)
    return BalanceResult(strategy, before, distribution(kept), ratio, kept, dropped, added, warnings)


def _balance_label_sets(
    examples: list[Example], strategy: str, cap_ratio: float, rng: random.Random
) -> tuple[list[Example], list[Example], int]:
    """Multi-label balancing, where one example counts for each of its labels.

    oversample: ML-ROS (Charte et al., 2015): a label's imbalance is the largest label's count over its own; while
    a label is more imbalanced than the mean of them (as measured before), a random example carrying it is repeated,
    at most as many repeats as there are examples. cap: an example is dropped at random only while every label it
    carries is above cap_ratio x the smallest label's count, so no example of a label at or under that is lost."""
    counts = Counter(label for e in examples for label in e.labels or [])
    if strategy == "cap":
        limit = cap_ratio * min(counts.values())
        kept, dropped = [], []
        for example in rng.sample(examples, len(examples)):
            if example.labels and all(counts[label] > limit for label in example.labels):
                dropped.append(example)
                counts.subtract(example.labels)
            else:
                kept.append(example)
        return kept, dropped, 0
    if strategy != "oversample":
        raise ValueError(f"unknown balancing strategy {strategy!r}")
    largest = max(counts.values())
    mean_imbalance = sum(largest / n for n in counts.values()) / len(counts)
    carriers = {label: [e for e in examples if label in (e.labels or [])] for label in counts}
    extra: list[Example] = []
    minority = [label for label in sorted(counts) if largest / counts[label] > mean_imbalance]
    while minority and len(extra) < len(examples):
        for label in minority:
            example = rng.choice(carriers[label])
            extra.append(copy_of(example, len(extra) + 1))
            counts.update(example.labels)
        minority = [label for label in minority if largest / counts[label] > mean_imbalance]
    kept = examples + extra
    rng.shuffle(kept)
    return kept, [], len(extra)
