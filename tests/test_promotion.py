import pytest

from tunesmith.evaluation.metrics import paired_change
from tunesmith.forgetting.compare import compare_scores
from tunesmith.promotion.gate import gate

CHAMPION = "the champion (version 3)"
BASE = "the base model with its best prompt (few_shot)"


def right(n_right: int, n: int) -> list[float]:
    return [1.0] * n_right + [0.0] * (n - n_right)


def change(reference: list[float], new: list[float], kind: str = "classification") -> dict:
    return paired_change(kind, reference, new).to_json()


def forgetting(verdict: str):
    """A forgetting report with the given verdict, from outcomes that produce it."""
    before = [True] * 600 + [False] * 400
    lost = {"forgetting": 80, "no forgetting": 0, "inconclusive": 25}[verdict]
    after = [i >= lost for i in range(600)] + [False] * 400
    report = compare_scores({"gk": {"correct": before}}, {"gk": {"correct": after}}, 0.05)
    assert report.verdict == verdict
    return report


def test_a_better_model_without_forgetting_is_promoted():
    decision = gate("accuracy", change(right(30, 100), right(80, 100)), CHAMPION, forgetting("no forgetting"))
    assert decision.promoted and decision.state_name == "Promoted"
    assert decision.task_gate.startswith("beats the champion (version 3): accuracy 0.300 -> 0.800, +50.0 points [")
    assert "McNemar p = " in decision.task_gate and "on 100 test examples" in decision.task_gate
    assert decision.forgetting_gate.startswith("no forgetting: 1000 questions")
    assert decision.reason == f"{decision.task_gate}; forgetting: {decision.forgetting_gate}"


def test_a_model_that_ties_the_reference_on_the_test_items_does_not_beat_it():
    tie = change(right(70, 100), right(70, 100))
    decision = gate("accuracy", tie, CHAMPION, forgetting("no forgetting"))
    assert not decision.promoted and decision.task_gate.startswith("cannot be told from the champion")
    # Same accuracy, different items: still a tie, however the answers moved.
    swapped = change(right(70, 100), right(60, 100)[::-1][:30] + [1.0] * 70)
    assert not gate("accuracy", swapped, CHAMPION, None).promoted


def test_a_gain_the_test_items_cannot_resolve_is_not_beats():
    # 3 more right out of 40: +7.5 points, but McNemar's p is 0.25.
    decision = gate("accuracy", change(right(20, 40), right(23, 40)), CHAMPION, forgetting("no forgetting"))
    assert not decision.promoted and decision.change["low"] < 0 < decision.change["high"]


def test_the_verdict_never_claims_what_mcnemars_exact_test_beside_it_denies():
    """The demo's seed 3 against its champion: 4 test answers lost, none gained, on 40. Tango's (asymptotic)
    interval excludes zero, McNemar's exact p is 0.125: neither "is below" nor, the other way round, "beats"."""
    worse = change(right(40, 40), right(36, 40))
    assert worse["high"] < 0 and worse["p_value"] == pytest.approx(0.125)
    assert gate("accuracy", worse, CHAMPION, None).task_gate.startswith("cannot be told from the champion")
    better = change(right(36, 40), right(40, 40))
    assert better["low"] > 0 and not gate("accuracy", better, CHAMPION, forgetting("no forgetting")).promoted
    # 7 of 7 the same way: p = 0.016, and both agree.
    assert gate("accuracy", change(right(33, 40), right(40, 40)), CHAMPION, None).task_gate.startswith("beats")


def test_forgetting_blocks_promotion_even_for_a_better_model():
    decision = gate("accuracy", change(right(40, 100), right(95, 100)), BASE, forgetting("forgetting"))
    assert not decision.promoted and decision.task_gate.startswith("beats")
    assert decision.forgetting_verdict == "forgetting" and "dropped: gk" in decision.reason


def test_an_inconclusive_verdict_follows_the_configured_policy():
    better, report = change(right(40, 100), right(95, 100)), forgetting("inconclusive")
    blocked = gate("accuracy", better, BASE, report, inconclusive="block")
    assert not blocked.promoted and "(forgetting.inconclusive: block)" in blocked.forgetting_gate
    assert gate("accuracy", better, BASE, report, inconclusive="promote").promoted


def test_a_required_margin_must_be_cleared_beyond_noise():
    # ROUGE-L: every example up by 1.5 points is significant but below a 2-point margin.
    before = [0.2, 0.5, 0.4, 0.3, 0.6] * 10
    small = change(before, [b + 0.015 for b in before], "generation")
    assert small["low"] > 0
    assert not gate("rougeL", small, CHAMPION, None, min_improvement=0.02).promoted
    large = change(before, [b + 0.03 for b in before], "generation")
    assert gate("rougeL", large, CHAMPION, None, min_improvement=0.02).promoted


def test_by_default_a_model_no_better_than_the_reference_beyond_noise_is_not_promoted():
    # bitext_cs in the real-data matrix: ROUGE-L 0.17739 (base) -> 0.17742 (fine-tuned) on 30 test examples.
    from tunesmith.config.schema import PromotionConfig
    from tunesmith.records import DecisionRecord, EvaluationResult
    from tunesmith.report.stage import _outcome

    base = [0.1, 0.3, 0.2, 0.15, 0.12, 0.2] * 5
    tuned = [b + (0.05 if i % 2 else -0.05) for i, b in enumerate(base)]
    default = PromotionConfig().min_improvement
    decision = gate("rougeL", change(base, tuned, "generation"), BASE, None, default)
    assert not decision.promoted and "cannot be told from" in decision.reason
    assert "paired bootstrap" in decision.task_gate

    c = change(base, tuned, "generation")
    evaluation = EvaluationResult("generation", 30, {"rougeL": c["before"]}, {"rougeL": c["after"]}, "few_shot",
                                  change=c)  # fmt: skip
    outcome = _outcome(DecisionRecord("finetune", "lora"), evaluation, None, None, default)
    assert "cannot be told from the base model's best prompt (few_shot): rougeL 0.178 -> 0.178" in outcome


def test_per_example_scores_follow_the_primary_metric():
    from tunesmith.evaluation.metrics import per_example_scores

    assert per_example_scores("classification", ["a", "b"], ["a", "c"]) == [1.0, 0.0]
    fields = per_example_scores("json", ['{"x": 1, "y": 2}', '{"x": 1}'], ['{"x": 1, "y": 3}', "not json"])
    assert fields == [0.5, 0.0]
    rouge = per_example_scores("generation", ["the cat sat"], ["the cat sat"])
    assert rouge == [pytest.approx(1.0)]
