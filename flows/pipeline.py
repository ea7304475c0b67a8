"""finetune-pipeline: check inputs -> curate -> decide -> train -> evaluate -> forgetting -> promote -> report."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow
from prefect.states import Completed

from tunesmith.config import RunConfig, load_config
from tunesmith.console import progress
from tunesmith.forgetting.mitigation import Attempt, choose_attempt, needs_mitigation
from tunesmith.promotion.gate import task_gate_text
from tunesmith.quiet import quiet_libraries
from tunesmith.records import DecisionRecord, EvaluationResult, ForgettingReport, PromotionDecision, TrainedModel
from tunesmith.retraining.continual import continuing
from tunesmith.stages import Stage, in_order
from tunesmith.tasks.curation import curate_task
from tunesmith.tasks.curve import curve_of_run
from tunesmith.tasks.decision import decide_task
from tunesmith.tasks.evaluation import evaluate_task
from tunesmith.tasks.forgetting import benchmark_base_task, forgetting_task
from tunesmith.tasks.mitigation import retrain_against_forgetting
from tunesmith.tasks.models import prepare_model_task
from tunesmith.tasks.orchestration import record_failure
from tunesmith.tasks.promotion import promote_task
from tunesmith.tasks.report import report_task
from tunesmith.tasks.retraining import champion_task, check_inputs_task
from tunesmith.tasks.search import search_hyperparameters, with_search
from tunesmith.tasks.training import train_task
from tunesmith.tracking.mlflow_runs import RunRef, set_tags
from tunesmith.tracking.pipeline_run import pipeline_run
from tunesmith.training.plan import TrainingPlan

SKIPPED = "Skipped: inputs unchanged"


@dataclass
class PipelineResult:
    run_id: str
    output_dir: str
    decision: str
    summary_path: str
    outcome: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_version: dict[str, str] | None = None
    method: str | None = None
    metric: str | None = None  # the task metric the run is judged by (accuracy, rougeL, ...)
    base_prompt: str | None = None  # the base model's best prompt, which the fine-tuned model was compared with
    forgetting: str = ""  # the forgetting verdict and its pooled change, one line
    forgetting_verdict: str = ""  # forgetting | no forgetting | inconclusive
    task_gate: str = ""  # does the fine-tuned model beat its reference, with the paired change, one line
    promotion_reason: str = ""
    tracking_uri: str = ""
    experiment_id: str = ""

    @classmethod
    def of(
        cls, run: RunRef, decision: DecisionRecord, summary: str, outcome: str, trained: TrainedModel | None = None,
        scores: EvaluationResult | None = None, drift: ForgettingReport | None = None,
        promotion: PromotionDecision | None = None,
    ) -> PipelineResult:  # fmt: skip
        metrics = {f"base_{k}": v for k, v in scores.base.items()} | {
            f"finetuned_{k}": v for k, v in scores.finetuned.items()
        } if scores else {}  # fmt: skip
        return cls(
            run.run_id, run.out_dir, decision.decision, summary, outcome, metrics,
            trained.registered if trained else None, decision.method, scores.metric if scores else None,
            scores.base_prompt if scores else None,
            promotion.forgetting_gate if promotion else drift.headline() if drift else "",
            drift.verdict if drift else "", promotion.task_gate if promotion else _task_gate(scores),
            promotion.reason if promotion else "", run.uri, run.experiment_id,
        )  # fmt: skip


def _task_gate(scores: EvaluationResult | None) -> str:
    if not scores or not scores.change:
        return ""
    return task_gate_text(scores.metric, scores.change, f"the base model's best prompt ({scores.base_prompt})", 0.0)


def pipeline_stages(config: RunConfig) -> list[Stage]:
    """The stages of a run in order: what the console's [i/n] counts."""
    left_out = {Stage.BASE, Stage.COMPARISON, Stage.MITIGATION}
    if config.retraining.start_from != "champion":
        left_out.add(Stage.CHAMPION)
    if not config.evaluation.learning_curve.enabled:
        left_out.add(Stage.CURVE)
    if not config.forgetting.active:
        left_out |= {Stage.FORGETTING_BASELINE, Stage.FORGETTING}
    if not config.training.search.trials:
        left_out.add(Stage.SEARCH)
    if not config.promotion.enabled:
        left_out.add(Stage.PROMOTION)
    return in_order(set(Stage) - left_out)


def _skipped(run: RunRef, previous_run: str | None):
    set_tags(run, {"tunesmith.outcome": SKIPPED})
    message = f"{SKIPPED} since run {previous_run}: nothing to retrain"
    return Completed(name=SKIPPED, message=message, data=PipelineResult(run.run_id, run.out_dir, "skip", "", SKIPPED))


@flow(name="finetune-pipeline", on_failure=[record_failure], on_crashed=[record_failure])
def finetune_pipeline(config_path: str, overrides: list[str] | None = None):
    quiet_libraries()
    config = load_config(config_path, overrides)
    progress.plan(pipeline_stages(config))
    with pipeline_run(config) as run:
        inputs = check_inputs_task(run, config)
        if inputs.unchanged and config.retraining.skip_unchanged:
            return _skipped(run, inputs.previous_run)
        model = prepare_model_task(run, config)
        champion = champion_task(run, config) if config.retraining.start_from == "champion" else None
        config = continuing(config, champion) if champion else config
        data = curate_task(run, config, model, inputs.data, champion.data_dir if champion else None)
        decision = decide_task(run, config, data, model)
        if decision.stop:
            summary = report_task(run, config, data, decision)
            outcome = f"Stopped: {decision.decision.replace('_', ' ')} recommended"
            return Completed(name=outcome, message=outcome, data=PipelineResult.of(run, decision, summary, outcome))
        before = benchmark_base_task(run, config, model, [decision.method]) if config.forgetting.active else None
        plan = TrainingPlan.from_json(decision.training_plan)
        search = (
            search_hyperparameters(run, config, data, model, plan, before) if config.training.search.trials else None
        )
        plan, decision = with_search(run, decision, plan, search)
        trained = train_task(run, config, plan, data, model, champion)
        scores = evaluate_task(run, config, data, model, trained, decision)
        curve = curve_of_run(run, config, data, model, trained, scores)  # None unless evaluation.learning_curve
        drift = forgetting_task(run, config, model, trained, before, champion, data) if before is not None else None
        attempts = [Attempt(0, "as configured", trained, scores, drift, config, data)] if drift else []
        if needs_mitigation(drift) and config.forgetting.mitigation.enabled:
            attempts += retrain_against_forgetting(run, config_path, overrides or [], config, model, inputs.data,
                                                   plan, decision, before, attempts[0], champion)  # fmt: skip
        if len(attempts) > 1:  # the gates judge the best attempt; the report shows them all
            chosen = choose_attempt(attempts, config.forgetting.inconclusive)
            config, data, trained, scores, drift = (chosen.config, chosen.data, chosen.trained, chosen.evaluation,
                                                    chosen.forgetting)  # fmt: skip
        promotion = promote_task(run, config, data, model, trained, scores, drift) if config.promotion.enabled else None
        tradeoffs = [a.row() for a in attempts] if len(attempts) > 1 else None
        summary = report_task(run, config, data, decision, trained, scores, drift, promotion, tradeoffs, curve)
        outcome = promotion.state_name if promotion else "Trained"
        result = PipelineResult.of(run, decision, summary, outcome, trained, scores, drift, promotion)
        return Completed(name=outcome, message=promotion.reason if promotion else outcome, data=result)
