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
    mixed = list(train) + chosen
    rng.shuffle(mixed)
    return ReplayMix(mixed, len(chosen), len(replay), warnings)
