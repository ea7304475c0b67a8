from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.records import (
    CuratedData,
    DecisionRecord,
    EvaluationResult,
    ForgettingReport,
    PromotionDecision,
    TrainedModel,
    change_text,
)
from tunesmith.report.stage import run_report
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_json, log_metrics, set_tags, stage_run


@task(name="report", timeout_seconds=HOUR, **SERVICE_RETRIES)
def report_task(
    run: RunRef,
    config: RunConfig,
    data: CuratedData,
    decision: DecisionRecord,
    trained: TrainedModel | None = None,
    evaluation: EvaluationResult | None = None,
    forgetting: ForgettingReport | None = None,
    promotion: PromotionDecision | None = None,
    attempts: list[dict[str, Any]] | None = None,
    curve: str | None = None,
) -> str:
    """Write the markdown summary; put the headline figures on the parent run for side-by-side comparison.
    `attempts`: the trade-off table's rows when forgetting was mitigated by retraining; `curve`: the learning
    curve's markdown, when the run measured one."""
    with stage_run(run, Stage.REPORT) as stage:
        report = run_report(
            config, data, decision, Path(run.out_dir), trained, evaluation, forgetting, promotion, attempts, curve
        )
        if forgetting:  # the verdict of the training the gates judged (an attempt's, after mitigation)
            set_tags(run, {"tunesmith.forgetting": forgetting.verdict,
                           "tunesmith.forgetting_change": change_text(forgetting.pooled)})  # fmt: skip
        if attempts:
            log_json(stage, attempts, "mitigation_attempts.json")
        log_artifact(stage, report.path)
        log_artifact(run, report.path)
        log_metrics(run, report.headline)
        set_tags(run, {"tunesmith.decision": decision.decision, "tunesmith.outcome": report.outcome})
        create_markdown_artifact(key="run-summary", markdown=report.summary, description=f"Tunesmith run {config.name}")
        progress.done(report.path)
    return report.path
