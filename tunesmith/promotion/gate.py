"""The promotion rule: beat the current champion (or the base model's best prompt) and forget nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    new_score: float
    reference: str  # what the new model was compared with
    reference_score: float
    model: str = ""
    version: str = ""

    @property
    def state_name(self) -> str:
        return "Promoted" if self.promoted else "Not promoted"

    def headline(self) -> str:
        return f"{self.model} version {self.version}: {self.state_name.lower()}, {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"state": self.state_name}


def gate(
    metric: str,
    new_score: float,
    reference: str,
    reference_score: float,
    forgetting_flagged: list[str],
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Promote only a model that beats the reference on the task metric and shows no catastrophic forgetting."""
    beats = new_score > reference_score + min_improvement
    margin = f"{metric} {new_score:.4f} vs {reference_score:.4f}"
    if forgetting_flagged:
        reason = (
            f"forgetting flagged on {', '.join(forgetting_flagged)} ("
            + ("beats" if beats else "and does not beat")
            + f" {reference}: {margin})"
        )
        return PromotionDecision(False, reason, metric, new_score, reference, reference_score)
    if not beats:
        extra = f" by more than {min_improvement}" if min_improvement else ""
        return PromotionDecision(
            False, f"does not beat {reference}{extra}: {margin}", metric, new_score, reference, reference_score
        )
    return PromotionDecision(
        True, f"beats {reference}: {margin}; no forgetting flagged", metric, new_score, reference, reference_score
    )
