"""finetune-pipeline: curate -> decide -> train -> evaluate -> forgetting -> report."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from tasks.config import load_config
from tasks.curation.task import curate_task
from tasks.decision.task import decide_task
from tasks.evaluation.task import evaluate_task
from tasks.forgetting.task import benchmark_base_task, forgetting_task
from tasks.models.task import prepare_model_task
from tasks.quiet import quiet_libraries
from tasks.report.task import report_task
from tasks.tracking.pipeline_run import pipeline_run
from tasks.training.task import train_task


@dataclass
class PipelineResult:
    run_id: str
    output_dir: str
    decision: str
    summary_path: str
    metrics: dict[str, float]


@flow(name="finetune-pipeline")
def finetune_pipeline(config_path: str, overrides: list[str] | None = None) -> PipelineResult:
    quiet_libraries()
    config = load_config(config_path, overrides)
    with pipeline_run(config) as run:
        model = prepare_model_task(run, config)
        data = curate_task(run, config, model)
        decision = decide_task(run, config, data, model)
        if decision.stop:
            summary = report_task(run, config, data, decision)
            return PipelineResult(run.run_id, run.out_dir, decision.decision, summary, {})
        before = benchmark_base_task(run, config, model) if config.forgetting.active else None
        trained = train_task(run, config, data, model, decision.method)
        scores = evaluate_task(run, config, data, model, trained)
        drift = forgetting_task(run, config, model, trained, before) if before is not None else None
        summary = report_task(run, config, data, decision, trained, scores, drift)
        metrics = {f"base_{k}": v for k, v in scores.base.items()} | {
            f"finetuned_{k}": v for k, v in scores.finetuned.items()
        }
        return PipelineResult(run.run_id, run.out_dir, decision.decision, summary, metrics)
