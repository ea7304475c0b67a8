"""The promotion stage as a plain function: compare the new version with the champion (re-scored on today's
test set) or, without one, the base model's best prompt, apply the gate, and move the alias when it passes."""

from __future__ import annotations

from tunesmith.config import RunConfig
from tunesmith.evaluation.metrics import paired_change
from tunesmith.evaluation.test_set import load_test_set
from tunesmith.promotion.champion import current_champion, score_champion
from tunesmith.promotion.gate import gate
from tunesmith.records import (
    CuratedData,
    EvaluationResult,
    ForgettingReport,
    PreparedModel,
    PromotionDecision,
    TrainedModel,
    change_text,
)


def run_promotion(
    config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel, evaluation: EvaluationResult,
    forgetting: ForgettingReport | None, client, tracking_uri: str,
) -> PromotionDecision:  # fmt: skip
    """`client` is the MLflow client of the registry that holds the version (the stage's own, in the pipeline)."""
    name, version = trained.registered["name"], trained.registered["version"]
    metric = evaluation.metric
    champion = current_champion(client, name, config.promotion.alias)
    if champion is not None and str(champion.version) != str(version):
        tests = load_test_set(config, data)
        scored = score_champion(
            champion, tracking_uri, tests, model.precision, model.path, config.evaluation.batch_size
        )
        reference, reference_scores = f"the champion (version {champion.version})", scored.per_example
    else:
        reference = f"the base model with its best prompt ({evaluation.base_prompt})"
        reference_scores = evaluation.per_example["base"]
    change = paired_change(evaluation.task_type, reference_scores, evaluation.per_example["finetuned"])
    decision = gate(
        metric, change.to_json(), reference, forgetting, config.promotion.min_improvement,
        config.forgetting.inconclusive,
    )  # fmt: skip
    decision.model, decision.version = name, version
    if decision.promoted:
        client.set_registered_model_alias(name, config.promotion.alias, version)
    client.set_model_version_tag(name, version, "promotion", decision.state_name)
    client.set_model_version_tag(name, version, "promotion_reason", decision.reason[:5000])
    client.set_model_version_tag(name, version, "task_change", change_text(decision.change))
    if forgetting:
        client.set_model_version_tag(name, version, "forgetting", forgetting.verdict)
        client.set_model_version_tag(name, version, "forgetting_change", change_text(forgetting.pooled))
    return decision
