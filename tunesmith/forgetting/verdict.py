"""The forgetting verdict from paired evidence: `forgetting`, `no forgetting` or `inconclusive`, per benchmark and for
the suite, with each benchmark's interval and the smallest drop its questions can detect.

The threshold is relative (5% of the base model's accuracy, as the reference texts put it); on a benchmark it is a
margin in points at that benchmark's baseline. A benchmark is `no forgetting` when its interval excludes a drop
beyond the margin, `forgetting` when its estimated drop is beyond the margin and the interval excludes no change,
and `inconclusive` otherwise. Each benchmark is tested at a Bonferroni-corrected level (simultaneous intervals), so
testing nine benchmarks does not raise nine chances of a false alarm; the suite is `forgetting` when any benchmark
is. Pooling all questions into one test was the alternative; it dilutes the loss of one skill (a drop on ARC-Easy
alone) among benchmarks that did not move, which is the forgetting that matters, so the pooled change is reported
beside the verdict but does not decide it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunesmith.statistics.paired import PairedDifference, paired_proportions, smallest_detectable_difference

FORGETTING, NO_FORGETTING, INCONCLUSIVE = "forgetting", "no forgetting", "inconclusive"


@dataclass(frozen=True)
class BenchmarkVerdict:
    name: str
    difference: PairedDifference  # after - before, share right, at the corrected confidence
    margin: float  # the threshold in points at this benchmark's baseline
    detectable: float  # the smallest drop these questions detect (80% power) at the observed share of changed answers
    verdict: str

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "margin": self.margin, "detectable_drop": self.detectable,
                **self.difference.to_json()}  # fmt: skip


def benchmark_verdict(difference: PairedDifference, margin: float) -> str:
    if difference.low > -margin:
        return NO_FORGETTING
    if difference.difference < -margin and difference.high < 0:
        return FORGETTING
    return INCONCLUSIVE


def suite_verdict(verdicts: Sequence[str]) -> str:
    if FORGETTING in verdicts:
        return FORGETTING
    return NO_FORGETTING if verdicts and all(v == NO_FORGETTING for v in verdicts) else INCONCLUSIVE


def judge_benchmarks(
    correct_before: Mapping[str, Sequence[bool]],
    correct_after: Mapping[str, Sequence[bool]],
    threshold: float,
    confidence: float = 0.95,
) -> list[BenchmarkVerdict]:
    """Each benchmark's verdict from its questions' right/wrong outcomes before and after training."""
    corrected = 1 - (1 - confidence) / max(len(correct_before), 1)
    judged = []
    for name, before in correct_before.items():
        difference = paired_proportions(before, correct_after[name], corrected)
        margin = threshold * difference.before
        detectable = smallest_detectable_difference(difference.n, difference.changed or 0.0, corrected)
        judged.append(BenchmarkVerdict(name, difference, margin, detectable, benchmark_verdict(difference, margin)))
    return judged


def pooled_difference(
    correct_before: Mapping[str, Sequence[bool]], correct_after: Mapping[str, Sequence[bool]]
) -> PairedDifference:
    """All questions of the suite as one paired sample, at 95%: reported beside the verdict."""
    before = [c for name in correct_before for c in correct_before[name]]
    after = [c for name in correct_before for c in correct_after[name]]
    return paired_proportions(before, after)
