"""The promotion stage as a plain function: compare the new version with the champion (re-scored on today's
test set) or, without one, the base model's best prompt, apply the gate, and move the alias when it passes."""

from __future__ import annotations

from tunesmith.config import RunConfig
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
        scores = score_champion(
            champion, tracking_uri, tests, model.precision, model.path, config.evaluation.batch_size
        )
        reference, reference_score = f"the champion (version {champion.version})", scores[metric]
    else:
        reference = f"the base model with its best prompt ({evaluation.base_prompt})"
        reference_score = evaluation.base[metric]
    flagged = forgetting.flagged if forgetting else []
    decision = gate(
        metric, evaluation.finetuned[metric], reference, reference_score, flagged, config.promotion.min_improvement
    )
    decision.model, decision.version = name, version
    if decision.promoted:
        client.set_registered_model_alias(name, config.promotion.alias, version)
    client.set_model_version_tag(name, version, "promotion", decision.state_name)
    client.set_model_version_tag(name, version, "promotion_reason", decision.reason[:5000])
    return decision
