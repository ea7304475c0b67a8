from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.evaluation.metrics import per_class_rows
from tunesmith.evaluation.stage import run_evaluation
from tunesmith.records import CuratedData, DecisionRecord, EvaluationResult, PreparedModel, TrainedModel
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR
from tunesmith.tracking.datasets import log_datasets, split_datasets
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_json, log_metrics, log_params, log_table, stage_run
from tunesmith.tracking.registry import log_model_metrics


def _rows(path: str) -> list[dict]:
    import json

    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@task(name="evaluate", timeout_seconds=2 * HOUR)
def evaluate_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel,
    decision: DecisionRecord,
) -> EvaluationResult:  # fmt: skip
    with stage_run(run, Stage.EVALUATION) as stage:
        result = run_evaluation(config, data, model, trained, decision, Path(stage.out_dir))
        log_params(
            stage, {"task_type": result.task_type, "base_prompt": result.base_prompt, "n_examples": result.n_examples}
        )
        log_metrics(stage, {f"base_{k}": v for k, v in result.base.items()})
        log_metrics(stage, {f"finetuned_{k}": v for k, v in result.finetuned.items()})
        test = split_datasets(data, config.name, only=("test",))["test"]
        log_datasets(stage, {"test": test})
        if trained.registered and trained.registered.get("model_id"):
            log_model_metrics(stage, trained.registered["model_id"], result.finetuned, test)
        rows = _rows(result.predictions_path)
        log_table(stage, rows, "test_predictions.json")
        if result.task_type in ("classification", "multilabel") and data.labels:  # labels by name, not MLflow keys
            log_table(stage, per_class_rows(data.labels, result.base, result.finetuned), "per_class.json")
        for path in result.artifacts:
            log_artifact(stage, path)
        if result.judge:
            log_metrics(stage, {f"{who}_{k}": v for who in ("base", "finetuned") for k, v in result.judge[who].items()})
            log_table(stage, result.judge["rows"], "judge.json")
            if "change" in result.judge:
                change = result.judge["change"]
                log_metrics(stage, {"judge_change": change["difference"], "judge_change_low": change["low"],
                                    "judge_change_high": change["high"]})  # fmt: skip
        log_json(stage, result.to_json() | {"judge": None}, "evaluation.json")
        create_table_artifact(
            key="test-predictions",
            table=rows[: config.evaluation.samples_in_report],
            description="Test examples, fine-tuned errors first: reference, base (best prompt) and fine-tuned outputs",
        )
        progress.done(result.headline())
    return result
