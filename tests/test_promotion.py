from tunesmith.promotion.gate import gate


def test_a_better_model_without_forgetting_is_promoted():
    decision = gate("accuracy", 0.80, "the champion (version 3)", 0.75, [])
    assert decision.promoted and decision.state_name == "Promoted"
    assert "beats the champion (version 3)" in decision.reason and "0.8000 vs 0.7500" in decision.reason


def test_a_model_that_does_not_beat_the_reference_is_not_promoted():
    decision = gate("accuracy", 0.75, "the champion (version 3)", 0.75, [])
    assert not decision.promoted and decision.state_name == "Not promoted"
    assert decision.reason.startswith("does not beat the champion (version 3)")


def test_forgetting_blocks_promotion_even_for_a_better_model():
    decision = gate("accuracy", 0.95, "the base model with its best prompt (few_shot)", 0.40, ["arc_easy", "piqa"])
    assert not decision.promoted
    assert decision.reason.startswith("forgetting flagged on arc_easy, piqa (beats")


def test_a_required_margin_must_be_cleared():
    assert not gate("rougeL", 0.51, "the champion (version 1)", 0.50, [], min_improvement=0.02).promoted
    assert gate("rougeL", 0.53, "the champion (version 1)", 0.50, [], min_improvement=0.02).promoted


def test_by_default_a_model_no_better_than_the_reference_beyond_noise_is_not_promoted():
    # bitext_cs in the real-data matrix: ROUGE-L 0.17739 (base) -> 0.17742 (fine-tuned) on 30 test examples.
    from tunesmith.config.schema import PromotionConfig
    from tunesmith.records import DecisionRecord, EvaluationResult
    from tunesmith.report.stage import _outcome

    default = PromotionConfig().min_improvement
    decision = gate("rougeL", 0.17742, "the base model with its best prompt (few_shot)", 0.17739, [], default)
    assert not decision.promoted and "by more than 0.01" in decision.reason
    assert gate("rougeL", 0.30, "the base model with its best prompt (few_shot)", 0.17739, [], default).promoted

    evaluation = EvaluationResult("generation", 30, {"rougeL": 0.17739}, {"rougeL": 0.17742}, "few_shot")
    outcome = _outcome(DecisionRecord("finetune", "lora"), evaluation, None, decision, default)
    assert "is no better than the base model's best prompt on rougeL (0.177 -> 0.177)" in outcome
