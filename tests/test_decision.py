import pytest

from tasks.config.schema import DecisionConfig
from tasks.decision.rules import decide


@pytest.mark.parametrize(
    ("n_train", "decision", "stop"),
    [(5, "prompting", True), (50, "few_shot_prompting", True), (100, "finetune", False), (5000, "finetune", False)],
)
def test_data_size_rules(n_train, decision, stop):
    record = decide(n_train, "classification", DecisionConfig(), "lora")
    assert record.decision == decision
    assert record.stop is stop
    assert record.method == ("lora" if decision == "finetune" else None)
    fired = [r for r in record.rules if r.fired]
    assert len(fired) == 1 and str(n_train) in fired[0].evidence


def test_forced_decision_records_what_would_have_been_chosen():
    record = decide(20, "classification", DecisionConfig(force="finetune"), "lora")
    assert record.decision == "finetune" and not record.stop
    assert record.overridden and record.would_have_chosen == "few_shot_prompting"
    assert record.to_json()["stop"] is False


def test_force_that_agrees_is_not_an_override():
    record = decide(500, "classification", DecisionConfig(force="finetune"), "lora")
    assert not record.overridden and record.would_have_chosen is None
