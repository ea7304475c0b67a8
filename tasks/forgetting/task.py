from pathlib import Path
from typing import Any

from prefect import task

from tasks.config import RunConfig
from tasks.forgetting.benchmarks import run_benchmarks
from tasks.forgetting.compare import ForgettingReport, compare_scores
from tasks.models.load import load_model
from tasks.models.prepared import PreparedModel
from tasks.tracking.mlflow_runs import RunRef, log_json, log_metrics, set_tags, stage_run
from tasks.training.inference import load_trained
from tasks.training.sft import TrainedModel


def _scores(config: RunConfig, loaded, work_dir: Path) -> dict[str, dict[str, Any]]:
    f = config.forgetting
    model, tokenizer = loaded
    return run_benchmarks(model, tokenizer, f.benchmarks, work_dir, f.limit, f.seed, f.batch_size)


@task(name="benchmark-base-model")
def benchmark_base_task(run: RunRef, config: RunConfig, model: PreparedModel) -> dict[str, dict[str, Any]]:
    """General-capability scores of the base model, taken before training."""
    with stage_run(run, "forgetting-baseline") as stage:
        loaded = load_model(model.path, model.precision, model.trust_remote_code)
        scores = _scores(config, loaded, Path(stage.out_dir) / "benchmarks")
        log_metrics(stage, {f"{name}_acc": s["acc"] for name, s in scores.items()})
        log_json(stage, scores, "before.json")
    return scores


@task(name="forgetting")
def forgetting_task(
    run: RunRef, config: RunConfig, model: PreparedModel, trained: TrainedModel, before: dict[str, dict[str, Any]]
) -> ForgettingReport:
    """The same benchmarks on the fine-tuned model, compared with the baseline."""
    with stage_run(run, "forgetting") as stage:
        loaded = load_trained(model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code)
        after = _scores(config, loaded, Path(stage.out_dir) / "benchmarks")
        report = compare_scores(before, after, config.forgetting.threshold)
        for name, row in report.per_benchmark.items():
            log_metrics(stage, {f"{name}_{k}": v for k, v in row.items()})
        log_metrics(stage, {"forgetting_flag": float(report.forgetting)})
        set_tags(stage, {"tunesmith.forgetting": report.forgetting})
        log_json(stage, {"before": before, "after": after, **report.to_json()}, "forgetting.json")
    return report
