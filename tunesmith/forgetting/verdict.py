"""The forgetting verdict from paired evidence: `forgetting`, `no forgetting` or `inconclusive`, per benchmark, pooled
over the suite, and for the run, with each interval and the smallest drop its questions can detect.

The threshold is relative (5% of the base model's accuracy, as the reference texts put it); on a benchmark it is a
margin in points at that benchmark's baseline. A sample is `no forgetting` when its interval excludes a drop beyond
the margin, `forgetting` when its estimated drop is beyond the margin and the interval excludes no change, and
`inconclusive` otherwise.

The run's verdict is decided on the pooled suite (one test at 95%): a few hundred questions per benchmark cannot
resolve a threshold of two or three points (at 200 questions and 10% changed answers a benchmark detects about 6
points), the thousand-odd questions of the suite can. Pooling alone would dilute the loss of one skill (ARC-Easy
down ten points among benchmarks that did not move), so each benchmark is also tested, at a Bonferroni-corrected
level (simultaneous intervals over the k benchmarks), and one that shows forgetting makes the run `forgetting`
too. A false alarm then needs the pooled test (2.5%, one-sided) or one of the corrected ones (2.5% together) to
err: at most 5%. `no forgetting` needs the pooled interval to clear the margin and no benchmark to show
forgetting; a benchmark that alone is inconclusive is detail, not a veto."""

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
    if difference.difference < -margin and difference.direction < 0:  # below zero by the interval and McNemar
        return FORGETTING
    return INCONCLUSIVE


def suite_verdict(pooled: str, benchmarks: Sequence[str]) -> str:
    """The run's verdict from the pooled suite's and each benchmark's."""
    if pooled == FORGETTING or FORGETTING in benchmarks:
        return FORGETTING
    return pooled


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


def judge_pooled(
    correct_before: Mapping[str, Sequence[bool]],
    correct_after: Mapping[str, Sequence[bool]],
    threshold: float,
    confidence: float = 0.95,
) -> BenchmarkVerdict:
    """All questions of the suite as one paired sample."""
    before = [c for name in correct_before for c in correct_before[name]]
    after = [c for name in correct_before for c in correct_after[name]]
    difference = paired_proportions(before, after, confidence)
    margin = threshold * difference.before
    detectable = smallest_detectable_difference(difference.n, difference.changed or 0.0, confidence)
    return BenchmarkVerdict("all", difference, margin, detectable, benchmark_verdict(difference, margin))


PLANNING_CHANGED = 0.15  # share of answers that change in training, to plan a suite before any is measured


def planned_detectable(n: int, confidence: float = 0.95) -> float:
    """The smallest drop n questions can detect (80% power) before training, when 15% of the answers change: the
    demo's LoRA changed 6 to 30% of the standard tier's answers per benchmark (18% of all), more on benchmarks
    where the model is close to chance; stronger models change fewer."""
    return smallest_detectable_difference(n, PLANNING_CHANGED, confidence)


@dataclass(frozen=True)
class SuitePlan:
    """Before training: can the suite's questions see a drop of the threshold at the base model's accuracy?"""

    n: int
    accuracy: float
    margin: float
    detectable: float

    @property
    def resolves(self) -> bool:
        return self.detectable <= self.margin

    def text(self) -> str:
        verdict = "resolves" if self.resolves else "cannot resolve"
        return (
            f"{self.n} questions detect drops of {100 * self.detectable:.1f} points (if {PLANNING_CHANGED:.0%} of "
            f"answers change): {verdict} the threshold of {100 * self.margin:.1f} points at accuracy "
            f"{self.accuracy:.3f}"
        )


def plan_suite(scores: Mapping[str, Mapping[str, Any]], threshold: float) -> SuitePlan:
    """The plan from the base model's scores (per benchmark: "correct", the outcome of each question)."""
    correct = [c for s in scores.values() for c in s["correct"]]
    accuracy = sum(correct) / max(len(correct), 1)
    return SuitePlan(len(correct), accuracy, threshold * accuracy, planned_detectable(len(correct)))
