"""Before/after comparison of general-capability benchmarks: the paired verdict (forgetting/verdict.py) as a report."""

from __future__ import annotations

from typing import Any

from tunesmith.forgetting.verdict import BenchmarkVerdict, judge_benchmarks, judge_pooled, suite_verdict
from tunesmith.records import ForgettingReport

# In forgetting.mitigation.order's default order (what the measurements behind it found to work first).
MITIGATIONS = [
    "mix more general-domain replay data into training (data.replay.fraction: 0.1 by default, up to 0.2)",
    "pull the trained weights toward the base model's (training.l2_to_base)",
    "train fewer epochs (training.epochs) or stop earlier",
    "lower the learning rate (for example halve training.learning_rate)",
]


def _row(judged: BenchmarkVerdict) -> dict[str, float]:
    d = judged.difference
    return {
        "before": d.before,
        "after": d.after,
        "absolute_change": d.difference,
        "relative_change": d.difference / d.before if d.before else 0.0,
        "difference": d.difference,
        "low": d.low,
        "high": d.high,
        "confidence": d.confidence,
        "margin": judged.margin,
        "detectable_drop": judged.detectable,
        "changed": d.changed or 0.0,
        "p_value": d.p_value,
        "n": d.n,
    }


def compare_scores(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], threshold: float, confidence: float = 0.95
) -> ForgettingReport:
    """Per benchmark and pooled: the change on the same questions with its interval, and the verdict."""
    correct_before = {name: scores["correct"] for name, scores in before.items()}
    correct_after = {name: after[name]["correct"] for name in before}
    judged = judge_benchmarks(correct_before, correct_after, threshold, confidence)
    pooled = judge_pooled(correct_before, correct_after, threshold, confidence)
    verdict = suite_verdict(pooled.verdict, [j.verdict for j in judged])
    notes = []
    if verdict == "inconclusive":
        notes.append(
            f"The {pooled.difference.n} questions cannot tell a drop of {100 * pooled.margin:.1f} points (the "
            f"threshold) from noise: at the {pooled.difference.changed:.0%} of answers that changed they detect "
            f"drops of {100 * pooled.detectable:.1f} points or more. More questions (a larger forgetting.tier, more "
            "files of your own, or a higher forgetting.limit) would decide it."
        )
    return ForgettingReport(
        threshold,
        {j.name: _row(j) for j in judged},
        {j.name: j.verdict for j in judged},
        _row(pooled),
        pooled.verdict,
        verdict,
        MITIGATIONS if verdict == "forgetting" else [],
        notes,
    )
