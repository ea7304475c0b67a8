from prefect import task
from prefect.artifacts import create_markdown_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.curation.curate import CuratedData
from tunesmith.evaluation.evaluate import EvaluationResult, load_test_examples
from tunesmith.evaluation.metrics import primary_metric
from tunesmith.forgetting.compare import ForgettingReport
from tunesmith.models.prepared import PreparedModel
from tunesmith.promotion.champion import current_champion, score_champion
from tunesmith.promotion.gate import PromotionDecision, gate
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, log_json, log_metrics, set_tags, stage_run
from tunesmith.training.sft import TrainedModel


@task(name="promote", timeout_seconds=HOUR, **SERVICE_RETRIES)
def promote_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel,
    evaluation: EvaluationResult, forgetting: ForgettingReport | None,
) -> PromotionDecision:  # fmt: skip
    with stage_run(run, "promotion") as stage:
        name, version = trained.registered["name"], trained.registered["version"]
        metric = primary_metric(evaluation.task_type)
        client = stage.client
        champion = current_champion(client, name, config.promotion.alias)
        if champion is not None and str(champion.version) != str(version):
            examples = load_test_examples(data.test_path, config.evaluation.max_examples)
            scores = score_champion(champion, stage.uri, examples, data.labels, evaluation.task_type, model.precision,
                                    model.path, config.evaluation.batch_size)  # fmt: skip
            reference, reference_score = f"the champion (version {champion.version})", scores[metric]
        else:
            reference = f"the base model with its best prompt ({evaluation.base_prompt})"
            reference_score = evaluation.base[metric]
        flagged = forgetting.flagged if forgetting else []
        decision = gate(metric, evaluation.finetuned[metric], reference, reference_score, flagged,
                        config.promotion.min_improvement)  # fmt: skip
        decision.model, decision.version = name, version
        if decision.promoted:
            client.set_registered_model_alias(name, config.promotion.alias, version)
        client.set_model_version_tag(name, version, "promotion", decision.state_name)
        client.set_model_version_tag(name, version, "promotion_reason", decision.reason[:5000])
        log_metrics(stage, {"promoted": float(decision.promoted), "new_score": decision.new_score,
                            "reference_score": decision.reference_score})  # fmt: skip
        set_tags(
            run, {"tunesmith.promotion": decision.state_name, "tunesmith.promotion_reason": decision.reason[:5000]}
        )
        log_json(stage, decision.to_json(), "promotion.json")
        create_markdown_artifact(
            key="promotion",
            markdown=f"## {decision.state_name}: {name} version {version}\n\n{decision.reason}",
            description="Promotion gate",
        )
        progress.done(decision.headline())
    return decision
