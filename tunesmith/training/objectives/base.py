"""What a training objective is: what rows it trains on, TRL's trainer and config for it, the defaults the
literature gives it, and what it costs beside the method (a reference model, a second sequence per example)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tunesmith.records import Example


@dataclass(frozen=True)
class Objective:
    name: str
    data: Literal["demonstrations", "preferences"]  # what its rows must be
    trainer_class: str  # TRL's trainer, "module:Class" (imported when training starts: TRL is heavy to import)
    config_class: str  # TRL's config class for it
    # The rows TRL's trainer reads, in its conversational form, from curated examples and the system prompt.
    rows: Callable[[list[Example], str], list[dict[str, Any]]] | None = None
    # Its own TRL settings from training.preference (beta and the like).
    settings: Callable[[Any], dict[str, Any]] = lambda preference: {}
    # The default learning rate as a multiple of the method's supervised one (see each objective's source).
    rate_scale: float = 1.0
    # Its loss compares the model with a frozen reference (the base, or the adapter switched off under PEFT).
    needs_reference: bool = False
    # Training rows per curated example (KTO trains each side of a pair as its own row).
    rows_per_example: int = 1
    # Sequences the model reads per training row in one step: a pair reads the chosen and the rejected reply.
    sequences_per_row: int = 1
    # The order TRL must read the rows in; None: random (or length-grouped for supervised rows).
    sampling: str | None = None
    # TRL options this objective's config does not take.
    unsupported: frozenset[str] = field(default_factory=frozenset)
    summary: str = ""

    def trainer(self) -> type:
        return _load(self.trainer_class)

    def arguments(self) -> type:
        return _load(self.config_class)


def _load(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)
