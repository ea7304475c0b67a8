"""Before/after comparison of general-capability benchmarks, and the forgetting flag."""

from __future__ import annotations

from typing import Any

from tunesmith.records import ForgettingReport
from tunesmith.statistics.paired import mcnemar_p

MITIGATIONS = [
    "mix 5-10% general-domain replay data into training (data.replay.fraction: 0.05 to 0.1)",
    "lower the learning rate (for example halve training.learning_rate)",
    "train fewer epochs (training.epochs) or stop earlier",
]


def compare_scores(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    threshold: float,
    require_significance: bool = False,
) -> ForgettingReport:
    """Per benchmark: before, after, absolute and relative change and McNemar's p; flag relative drops above
    the threshold (and, if required, significant ones)."""
    rows: dict[str, dict[str, float]] = {}
    flagged, notes = [], []
    for name, b in before.items():
        acc_before, acc_after = b["acc"], after[name]["acc"]
        relative = (acc_after - acc_before) / acc_before if acc_before else 0.0
        paired = b.get("correct") and len(b["correct"]) == len(after[name].get("correct") or [])
        p_value = mcnemar_p(b["correct"], after[name]["correct"]) if paired else float("nan")
        rows[name] = {
            "before": acc_before,
            "after": acc_after,
            "absolute_change": acc_after - acc_before,
            "relative_change": relative,
            "p_value": p_value,
            "n": b["n"],
        }
        if relative < -threshold:
            significant = paired and p_value < 0.05
            if significant or not require_significance:
                flagged.append(name)
            if not significant:
                notes.append(
                    f"{name}: the {-relative:.1%} drop is not significant on {b['n']} questions (McNemar p = "
                    f"{p_value:.2f}); more questions (forgetting.limit) would tell noise from forgetting"
                )
    return ForgettingReport(threshold, rows, flagged, MITIGATIONS if flagged else [], notes)
