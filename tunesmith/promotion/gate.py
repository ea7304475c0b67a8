"""The promotion rule: beat the current champion (or the base model's best prompt) on the same test examples, by
a margin that matters and beyond noise, and show no forgetting."""

from __future__ import annotations

from typing import Any

from tunesmith.records import ForgettingReport, PromotionDecision, change_text
from tunesmith.statistics.paired import direction_of


def beats(change: dict[str, Any], min_improvement: float) -> bool:
    """The new model beats the reference when the paired change (new - reference) is above zero beyond noise
    (its interval and, for right/wrong outcomes, McNemar's exact test) and the estimate is above `min_improvement`
    (practical significance)."""
    return direction_of(change) > 0 and change["difference"] > min_improvement


def task_gate_text(metric: str, change: dict[str, Any], reference: str, min_improvement: float) -> str:
    """One line: does the new model beat the reference, with the paired change and its interval."""
    direction = direction_of(change)
    verdict = (
        "beats" if beats(change, min_improvement)
        else "is below" if direction < 0
        else "cannot be told from" if direction == 0
        else f"beats by no more than {min_improvement:g}"
    )  # fmt: skip
    test = "McNemar" if change["method"].startswith("Tango") else "paired bootstrap"
    p = f", {test} p = {change['p_value']:.2g}" if change["p_value"] == change["p_value"] else f", {test}"
    return (
        f"{verdict} {reference}: {metric} {change['before']:.3f} -> {change['after']:.3f}, {change_text(change)}"
        f" on {change['n']} test examples{p}"
    )


def gate(
    metric: str,
    change: dict[str, Any],
    reference: str,
    forgetting: ForgettingReport | None,
    min_improvement: float = 0.0,
    inconclusive: str = "block",
) -> PromotionDecision:
    """Promote only a model that beats the reference (`change`: new - reference, a PairedDifference as JSON) and
    whose forgetting verdict allows it: `forgetting` blocks, `inconclusive` blocks unless the policy promotes."""
    task = task_gate_text(metric, change, reference, min_improvement)
    verdict = forgetting.verdict if forgetting else "not measured"
    blocked = verdict == "forgetting" or (verdict == "inconclusive" and inconclusive == "block")
    forgetting_line = forgetting.headline() if forgetting else "not measured"
    if blocked and verdict == "inconclusive":
        forgetting_line += " (forgetting.inconclusive: block)"
    promoted = beats(change, min_improvement) and not blocked
    return PromotionDecision(
        promoted, f"{task}; forgetting: {forgetting_line}", metric, change["after"], reference, change["before"],
        change=change, forgetting_verdict=verdict, task_gate=task, forgetting_gate=forgetting_line,
    )  # fmt: skip
