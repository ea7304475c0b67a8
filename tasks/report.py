from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.curation.curate import CuratedData
from tunesmith.decision.rules import DecisionRecord
from tunesmith.evaluation.evaluate import EvaluationResult
from tunesmith.evaluation.metrics import primary_metric
from tunesmith.forgetting.compare import ForgettingReport
from tunesmith.promotion.gate import PromotionDecision
from tunesmith.report.summary import render_summary
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_metrics, set_tags, stage_run
from tunesmith.training.sft import TrainedModel


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
) -> str:
    """Write the markdown summary; put the headline figures on the parent run for side-by-side comparison."""
    with stage_run(run, "report") as stage:
        outcome = _outcome(decision, evaluation, forgetting, promotion)
        summary = render_summary(config.name, config.model, data, decision, trained, evaluation, forgetting, outcome)
        path = Path(run.out_dir) / "summary.md"
        path.write_text(summary, encoding="utf-8")
        log_artifact(stage, path)
        log_artifact(run, path)
        headline = {f"data_{k}": float(v) for k, v in data.counts.items()}
        if trained:
            headline |= {f"train_{k}": v for k, v in trained.metrics.items()}
        if evaluation:
            headline |= {f"base_{k}": v for k, v in evaluation.base.items()}
            headline |= {f"finetuned_{k}": v for k, v in evaluation.finetuned.items()}
        if forgetting:
            headline |= {
                f"forgetting_{n}_relative_change": r["relative_change"] for n, r in forgetting.per_benchmark.items()
            }
            headline["forgetting_flag"] = float(forgetting.forgetting)
        log_metrics(run, headline)
        set_tags(run, {"tunesmith.decision": decision.decision, "tunesmith.outcome": outcome})
        create_markdown_artifact(key="run-summary", markdown=summary, description=f"Tunesmith run {config.name}")
        progress.done(f"{path}")
    return str(path)


def _outcome(
    decision: DecisionRecord,
    evaluation: EvaluationResult | None,
    forgetting: ForgettingReport | None,
    promotion: PromotionDecision | None,
) -> str:
    if decision.stop:
        return f"stopped before training: {decision.decision.replace('_', ' ')} is the recommended approach"
    parts = [f"fine-tuned ({decision.method})"]
    if evaluation:
        key = primary_metric(evaluation.task_type)
        verdict = "beats" if evaluation.finetuned[key] > evaluation.base[key] else "does not beat"
        parts.append(
            f"{verdict} the base model's best prompt on {key} "
            f"({evaluation.base[key]:.3f} -> {evaluation.finetuned[key]:.3f})"
        )
    if forgetting and forgetting.forgetting:
        parts.append(f"forgetting flagged on {', '.join(forgetting.flagged)}")
    if promotion:
        parts.append(f"{promotion.state_name.lower()}: {promotion.reason}")
    return "; ".join(parts)
