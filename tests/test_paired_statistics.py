"""Paired comparisons the gates decide from: Tango's interval, McNemar's test, the paired bootstrap, and the
smallest difference a number of questions can detect, against hand computations and simulation."""

import math
import random

import pytest

from tunesmith.statistics.paired import (
    mcnemar_p,
    paired_proportions,
    paired_scores,
    smallest_detectable_difference,
)


def outcomes(both: int, lost: int, gained: int, neither: int) -> tuple[list[bool], list[bool]]:
    before = [True] * both + [True] * lost + [False] * gained + [False] * neither
    after = [True] * both + [False] * lost + [True] * gained + [False] * neither
    return before, after


def test_an_unchanged_model_gets_an_interval_around_zero_as_wide_as_its_questions_allow():
    # No answer changed on 100 questions: Tango's bounds are -+z^2/(n+z^2) (about 3.7 points), not a point at zero.
    difference = paired_proportions(*outcomes(50, 0, 0, 50))
    assert difference.difference == 0 and difference.p_value == 1.0 and difference.changed == 0
    z2 = 1.959964**2
    assert difference.high == pytest.approx(z2 / (100 + z2), abs=1e-6)
    assert difference.low == pytest.approx(-z2 / (100 + z2), abs=1e-6)
    assert difference.direction == 0


def test_with_many_questions_the_interval_meets_the_wald_interval():
    # Agresti and Min's approval ratings: 794 yes-yes, 150 gained, 86 lost, 570 no-no.
    difference = paired_proportions(*outcomes(794, 86, 150, 570))
    n, change = 1600, (150 - 86) / 1600
    half = 1.959964 * math.sqrt((150 + 86) / n - change**2) / math.sqrt(n)
    assert difference.difference == pytest.approx(change)
    assert difference.low == pytest.approx(change - half, abs=0.001)
    assert difference.high == pytest.approx(change + half, abs=0.001)


def test_six_lost_answers_and_none_gained_are_a_significant_drop():
    before, after = outcomes(51, 6, 0, 52)
    assert mcnemar_p(before, after) == pytest.approx(2 * 0.5**6)
    difference = paired_proportions(before, after)
    assert difference.high < 0 and difference.direction == -1


def test_the_interval_covers_the_true_change_at_least_as_often_as_it_says():
    rng = random.Random(7)
    covered, trials = 0, 300
    for _ in range(trials):
        before = [rng.random() < 0.6 for _ in range(40)]
        after = [(not b) if rng.random() < 0.1 else b for b in before]  # true change: 0.58 - 0.60
        difference = paired_proportions(before, after)
        covered += difference.low <= -0.02 <= difference.high
    assert covered / trials >= 0.93  # 95% nominal; 300 trials put the observed share within about 2.5 points


def test_scores_on_a_scale_get_a_paired_bootstrap_interval():
    before = [0.2, 0.4, 0.5, 0.1, 0.3, 0.6, 0.2, 0.4, 0.5, 0.3] * 3
    after = [b + 0.1 for b in before]  # every item up by 0.1
    difference = paired_scores(before, after)
    assert difference.difference == pytest.approx(0.1)
    assert difference.low == pytest.approx(0.1) and difference.high == pytest.approx(0.1)
    same = paired_scores(before, before)
    assert same.low == same.high == 0 and same.direction == 0
    noisy = paired_scores(before, [b + (0.1 if i % 2 else -0.1) for i, b in enumerate(before)])
    assert noisy.low < 0 < noisy.high


def test_the_smallest_detectable_drop_matches_connors_formula_by_hand():
    # n = (1.96 sqrt(0.1) + 0.8416 sqrt(0.1 - 0.03^2))^2 / 0.03^2 = 869.7 questions for 3 points at 10% flips.
    assert smallest_detectable_difference(870, 0.10) == pytest.approx(0.03, abs=2e-4)
    assert smallest_detectable_difference(900, 0.10) < 0.03


def test_the_smallest_detectable_drop_shrinks_as_questions_are_added():
    sizes = [20, 109, 400, 1000, 4000]
    drops = [smallest_detectable_difference(n, 0.10) for n in sizes]
    assert drops == sorted(drops, reverse=True) and drops[-1] < drops[0] / 5
    assert smallest_detectable_difference(109, 0.10) > 0.08  # the demo's 109 questions cannot see 3 points
    assert smallest_detectable_difference(1000, 0.0) > 0  # no flips seen yet is not no flips to come


def test_the_forgetting_verdict_has_three_answers_from_the_interval_and_the_margin():
    from tunesmith.forgetting.verdict import FORGETTING, INCONCLUSIVE, NO_FORGETTING, judge_benchmarks, suite_verdict

    threshold = 0.05  # relative: 2.85 points at a 0.57 baseline
    many_lost = outcomes(300, 120, 20, 560)  # 1000 questions, 0.42 -> 0.32: well beyond the margin, significant
    unchanged = outcomes(570, 10, 10, 410)  # 1000 questions, 20 changed both ways: interval within the margin
    demo_like = outcomes(56, 9, 3, 41)  # 109 questions, -5.5 points: beyond the margin, not significant
    judged = judge_benchmarks(
        {"lost": many_lost[0], "same": unchanged[0], "small": demo_like[0]},
        {"lost": many_lost[1], "same": unchanged[1], "small": demo_like[1]},
        threshold,
    )
    verdicts = {j.name: j.verdict for j in judged}
    assert verdicts == {"lost": FORGETTING, "same": NO_FORGETTING, "small": INCONCLUSIVE}
    assert all(j.difference.confidence == pytest.approx(1 - 0.05 / 3) for j in judged)  # Bonferroni over three
    small = next(j for j in judged if j.name == "small")
    assert small.detectable > small.margin  # 109 questions cannot see the threshold: why it is inconclusive
    # The run is decided on the pooled suite; one benchmark that forgot makes it `forgetting`, one that alone is
    # inconclusive does not veto a pooled `no forgetting`.
    assert suite_verdict(NO_FORGETTING, [FORGETTING, NO_FORGETTING]) == FORGETTING
    assert suite_verdict(FORGETTING, [INCONCLUSIVE, INCONCLUSIVE]) == FORGETTING
    assert suite_verdict(NO_FORGETTING, [NO_FORGETTING, INCONCLUSIVE]) == NO_FORGETTING
    assert suite_verdict(INCONCLUSIVE, [NO_FORGETTING, NO_FORGETTING]) == INCONCLUSIVE


def test_an_unchanged_model_is_never_forgetting():
    from tunesmith.forgetting.verdict import FORGETTING, judge_benchmarks

    rng = random.Random(3)
    for _ in range(5):
        before = {name: [rng.random() < 0.5 for _ in range(n)] for name, n in (("a", 20), ("b", 109), ("c", 400))}
        judged = judge_benchmarks(before, before, 0.05)
        assert all(j.verdict != FORGETTING for j in judged)
