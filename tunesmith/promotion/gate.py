"""The promotion rule: beat the current champion (or the base model's best prompt) and forget nothing."""

from __future__ import annotations

from tunesmith.records import PromotionDecision


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
