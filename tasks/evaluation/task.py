from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from tasks.config import RunConfig
from tasks.curation.curate import CuratedData
from tasks.curation.records import write_jsonl
from tasks.evaluation.evaluate import EvaluationResult, load_test_examples, prediction_rows, score_model
from tasks.models.load import load_model
from tasks.models.prepared import PreparedModel
from tasks.prompts import system_prompt
from tasks.tracking.mlflow_runs import RunRef, log_json, log_metrics, log_table, stage_run
from tasks.training.inference import load_trained
from tasks.training.sft import TrainedModel


@task(name="evaluate")
def evaluate_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel
) -> EvaluationResult:
    with stage_run(run, "evaluation") as stage:
        examples = load_test_examples(data.test_path, config.evaluation.max_examples)
        system = system_prompt(config.prompt.system, data.labels)
        batch = config.evaluation.batch_size
        base_model, tokenizer = load_model(model.path, model.precision, model.trust_remote_code)
        base = score_model(base_model, tokenizer, examples, system, data.labels, batch)
        del base_model
        tuned_model, tokenizer = load_trained(
            model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code
        )
        tuned = score_model(tuned_model, tokenizer, examples, system, data.labels, batch)
        del tuned_model
        rows = prediction_rows(examples, base, tuned)
        predictions = write_jsonl(rows, Path(stage.out_dir) / "test_predictions.jsonl")
        result = EvaluationResult(data.task_type, len(examples), base.metrics, tuned.metrics, str(predictions))
        log_metrics(stage, {f"base_{k}": v for k, v in base.metrics.items()})
        log_metrics(stage, {f"finetuned_{k}": v for k, v in tuned.metrics.items()})
        log_json(stage, result.to_json(), "evaluation.json")
        log_table(stage, rows, "test_predictions.json")
        create_table_artifact(
            key="test-predictions",
            table=rows[: config.evaluation.samples_in_report],
            description="Test examples, errors first: reference, base and fine-tuned outputs",
        )
    return result
