from tunesmith.forgetting.compare import compare_scores
from tunesmith.forgetting.mitigation import Attempt, choose_attempt, needs_mitigation, plan_attempts
from tunesmith.records import EvaluationResult, TrainedModel


def test_each_attempt_adds_the_next_mitigation_to_the_ones_before():
    attempts = plan_attempts(["replay", "learning_rate", "fewer_steps"], 3, 0.0, 2e-4, 120)
    assert [a.name for a in attempts] == ["replay", "learning_rate", "fewer_steps"]
    assert attempts[0].data == ("data.replay.fraction=0.1",) and attempts[0].training == {}
    assert attempts[1].data == attempts[0].data and attempts[1].training == {"learning_rate": 1e-4}
    assert attempts[2].training == {"learning_rate": 1e-4, "max_steps": 60}
    assert attempts[2].why == "replay 10% + learning rate 0.0001 + 60 steps"


def test_attempts_are_bounded_and_follow_the_configured_order():
    assert [a.name for a in plan_attempts(["learning_rate", "replay"], 1, 0.0, 1e-3, 50)] == ["learning_rate"]
    # Replay already at the largest share the reference texts suggest: the next mitigation takes its place.
    assert [a.name for a in plan_attempts(["replay", "fewer_steps"], 1, 0.2, 1e-3, 50)] == ["fewer_steps"]
    assert plan_attempts(["replay"], 2, 0.1, 1e-3, 50)[0].data == ("data.replay.fraction=0.2",)


def _attempt(number: int, accuracy: float, lost: int) -> Attempt:
    before = [True] * 600 + [False] * 400
    after = [i >= lost for i in range(600)] + [False] * 400
    report = compare_scores({"gk": {"correct": before}}, {"gk": {"correct": after}}, 0.05)
    evaluation = EvaluationResult("classification", 40, {"accuracy": 0.3}, {"accuracy": accuracy}, "few_shot")
    return Attempt(number, f"attempt {number}", TrainedModel.__new__(TrainedModel), evaluation, report)


def test_the_gates_get_the_best_attempt_whose_forgetting_allows_promotion():
    forgot, inconclusive, clean = _attempt(0, 0.95, 80), _attempt(1, 0.93, 25), _attempt(2, 0.90, 0)
    assert needs_mitigation(forgot.forgetting) and not needs_mitigation(clean.forgetting)
    assert choose_attempt([forgot, inconclusive, clean], "block") is clean
    assert choose_attempt([forgot, inconclusive, clean], "promote") is inconclusive  # the better task score
    assert choose_attempt([forgot, _attempt(1, 0.9, 80)], "block") is forgot  # none passes: as configured
    # none passes, but one no longer shows forgetting: the gate blocks it as inconclusive, not as a drop
    assert choose_attempt([forgot, inconclusive], "block") is inconclusive
