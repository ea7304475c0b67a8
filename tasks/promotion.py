from prefect import task
from prefect.artifacts import create_markdown_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.promotion.stage import run_promotion
from tunesmith.records import (
    CuratedData,
    EvaluationResult,
    ForgettingReport,
    PreparedModel,
    PromotionDecision,
    TrainedModel,
    change_text,
)
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, log_json, log_metrics, set_tags, stage_run


@task(name="promote", timeout_seconds=HOUR, **SERVICE_RETRIES)
def promote_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel,
    evaluation: EvaluationResult, forgetting: ForgettingReport | None,
) -> PromotionDecision:  # fmt: skip
    with stage_run(run, Stage.PROMOTION) as stage:
        decision = run_promotion(config, data, model, trained, evaluation, forgetting, stage.client, stage.uri)
        name, version = decision.model, decision.version
        change = decision.change
        log_metrics(stage, {"promoted": float(decision.promoted), "new_score": decision.new_score,
                            "reference_score": decision.reference_score, "change": change["difference"],
                            "change_low": change["low"], "change_high": change["high"],
                            "change_p_value": change["p_value"], "test_examples": change["n"]})  # fmt: skip
        set_tags(
            run, {"tunesmith.promotion": decision.state_name, "tunesmith.promotion_reason": decision.reason[:5000],
                  "tunesmith.task_change": change_text(change)}
        )  # fmt: skip
        log_json(stage, decision.to_json(), "promotion.json")
        create_markdown_artifact(
            key="promotion",
            markdown=f"## {decision.state_name}: {name} version {version}\n\n{decision.reason}",
            description="Promotion gate",
        )
        progress.done(decision.headline())
    return decision
