"""Before/after comparison of general-capability benchmarks, and the forgetting flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MITIGATIONS = [
    "mix 5-10% general-domain replay data into training (data.replay)",
    "lower the learning rate (for example halve training.learning_rate)",
    "train fewer epochs or stop earlier",
]


@dataclass
class ForgettingReport:
    threshold: float
    per_benchmark: dict[str, dict[str, float]]
    flagged: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)

    @property
    def forgetting(self) -> bool:
        return bool(self.flagged)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"forgetting": self.forgetting}


def compare_scores(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], threshold: float
) -> ForgettingReport:
    """Per benchmark: before, after, absolute and relative change; flag relative drops above the threshold."""
    rows: dict[str, dict[str, float]] = {}
    flagged = []
    for name, b in before.items():
        acc_before, acc_after = b["acc"], after[name]["acc"]
        relative = (acc_after - acc_before) / acc_before if acc_before else 0.0
        rows[name] = {
            "before": acc_before,
            "after": acc_after,
            "absolute_change": acc_after - acc_before,
            "relative_change": relative,
            "n": b["n"],
        }
        if relative < -threshold:
            flagged.append(name)
    return ForgettingReport(
        threshold=threshold,
        per_benchmark=rows,
        flagged=flagged,
        recommendations=MITIGATIONS if flagged else [],
    )
