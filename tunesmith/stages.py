"""Every stage a flow shows, declared once: its name (the MLflow child run, the run folder, the console) and what a
person reads, in the order a run goes through them. Flows plan from here and tasks open their stage with these
members, so the console's [i/n] cannot miss a stage whose name was spelt differently somewhere."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Stage(StrEnum):
    label: str

    def __new__(cls, name: str, label: str | None = None) -> Stage:
        member = str.__new__(cls, name)
        member._value_ = name
        member.label = label or name
        return member

    FINGERPRINT = "fingerprint", "inputs"
    MODEL = "model"
    CHAMPION = "champion", "champion to continue"  # retraining.start_from: champion
    CURATION = "curation"
    DECISION = "decision"
    FORGETTING_BASELINE = "forgetting-baseline", "forgetting baseline"
    BASE = "base", "base model"  # the comparison's untrained model
    SEARCH = "search"
    TRAINING = "training"
    EVALUATION = "evaluation"
    CURVE = "curve", "learning curve"  # after evaluation in a run: the run's training is its largest point
    FORGETTING = "forgetting"
    MITIGATION = "mitigation", "retraining against forgetting"  # only when forgetting was found
    PROMOTION = "promotion"
    REPORT = "report"
    COMPARISON = "comparison"


def in_order(stages: Iterable[Stage]) -> list[Stage]:
    """The given stages in the order a run goes through them."""
    chosen = set(stages)
    return [s for s in Stage if s in chosen]


def label(name: str) -> str:
    """What the console shows for a stage name (a compared method or a search trial is shown as it is)."""
    return Stage(name).label if name in Stage._value2member_map_ else name
