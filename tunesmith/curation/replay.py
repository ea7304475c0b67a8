"""Replay: general-domain examples mixed into training so the model keeps what it knew."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tunesmith.records import Example


@dataclass
class ReplayMix:
    train: list[Example]
    added: int
    available: int
    warnings: list[str] = field(default_factory=list)


def mix_replay(train: list[Example], replay: list[Example], fraction: float, seed: int) -> ReplayMix:
    """Add replay examples so that they make up `fraction` of the training set (they are tagged origin=replay)."""
    if fraction <= 0 or not replay:
        return ReplayMix(list(train), 0, len(replay))
    wanted = round(fraction * len(train) / (1 - fraction))
    rng = random.Random(seed)
    chosen = rng.sample(replay, min(wanted, len(replay)))
    warnings = []
    if len(chosen) < wanted:
        warnings.append(
            f"replay data has {len(replay)} examples, fewer than the {wanted} needed for a {fraction:.0%} mix; used all"
        )
    # Replay rows go into random places among the task's rows, which keep their order: what reads the task's rows
    # in order (the decision's few-shot examples, hence the base model's best prompt) is the same with replay on.
    total = len(train) + len(chosen)
    slots = set(rng.sample(range(total), len(chosen)))
    task, general = iter(train), iter(chosen)
    mixed = [next(general) if i in slots else next(task) for i in range(total)]
    return ReplayMix(mixed, len(chosen), len(replay), warnings)
