import os
import socket
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tunesmith.comparison.assess import assess_base, assess_trained
from tunesmith.comparison.plan import fit_methods
from tunesmith.comparison.table import add_quality_vs_full, metric_charts, plot, rows, to_markdown, write_csv
from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.evaluation.test_set import load_test_set
from tunesmith.records import CuratedData, MethodResult, PreparedModel
from tunesmith.stages import Stage
from tunesmith.tasks.engine import worker_threads
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES, training_slot
from tunesmith.tracking.mlflow_runs import (
    RunRef,
    log_artifact,
    log_history,
    log_json,
    log_metrics,
    log_params,
    set_tags,
    stage_run,
)
from tunesmith.tracking.plan import log_plan
from tunesmith.training.plan import TrainingPlan
from tunesmith.training.stage import run_training


@task(name="plan-methods")
def plan_methods_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, methods: list[str]
) -> tuple[dict[str, TrainingPlan], list[MethodResult]]:
    plans, skipped = fit_methods(config, data, model, methods)
    log_params(run, {"comparison.requested": ", ".join(methods), "comparison.run": ", ".join(plans)})
    log_metrics(run, {f"{m}_estimated_memory_gb": p.memory["total_gb"] for m, p in plans.items()
                      if p.memory.get("checked")})  # fmt: skip
    for row in skipped:
        set_tags(run, {f"tunesmith.skipped.{row.method}": row.reason})
    return plans, skipped


@task(name="assess-base-model", timeout_seconds=2 * HOUR)
def assess_base_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, before: dict | None
) -> MethodResult:
    with stage_run(run, Stage.BASE) as child:
        set_tags(child, {"tunesmith.method": "base", "tunesmith.kind": "comparison-method"})
        tests = load_test_set(config, data)
        with training_slot(model.precision.device, config.orchestration.training_slot):  # a quiet machine to time on
            result = assess_base(config, model, tests, before, Path(child.out_dir))
        log_metrics(child, result.metrics)
        result.run_id = child.run_id
        progress.done(result.headline())
    return result


@task(name="compare-method", timeout_seconds=24 * HOUR)
def compare_method_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, plan: TrainingPlan, before: dict | None
) -> MethodResult:
    """Train one method's plan and measure it; training and latency timing hold the machine's training slot, so
    parallel methods on one machine take turns for those and overlap only in scoring."""
    threads = worker_threads(config.comparison)
    if threads:
        import torch

        torch.set_num_threads(threads)
    method = plan.method
    with stage_run(run, method) as child:
        worker = f"{socket.gethostname()} pid {os.getpid()}"
        set_tags(child, {"tunesmith.method": method, "tunesmith.kind": "comparison-method", "tunesmith.worker": worker})
        slot = (model.precision.device, config.orchestration.training_slot)
        with training_slot(*slot) as waited:
            trained = run_training(config, plan, data, model, Path(child.out_dir), child.run_id)
        log_params(child, trained.hyperparameters)
        log_plan(child, plan)
        # trained over several processes: how many, and each one's throughput
        log_metrics(child, {k: v for k, v in trained.metrics.items() if k == "world_size" or k.startswith("rank")})
        log_history(child, trained.history, ("loss", "eval_loss", "learning_rate"))
        if trained.loss_curve_path:
            log_artifact(child, trained.loss_curve_path)
        tests = load_test_set(config, data)
        with training_slot(*slot):
            result = assess_trained(config, model, trained, tests, before, Path(child.out_dir))
        log_metrics(child, result.metrics | {"waited_for_training_slot_s": waited})
        set_tags(child, {"tunesmith.trained_dir": trained.output_dir, "tunesmith.precision": trained.precision})
        result.run_id = child.run_id
        progress.done(result.headline())
    return result


@task(name="comparison-table", **SERVICE_RETRIES)
def comparison_table_task(run: RunRef, config: RunConfig, results: list[MethodResult]) -> str:
    """Quality relative to full fine-tuning, then the table as markdown, CSV and PNG, in MLflow and Prefect."""
    with progress.stage(Stage.COMPARISON):
        document = _comparison_table(run, config, results)
        progress.done(str(Path(run.out_dir) / "comparison" / "comparison.md"))
    return document


def _comparison_table(run: RunRef, config: RunConfig, results: list[MethodResult]) -> str:
    missing_reference = add_quality_vs_full(results)
    for result in results:
        if result.run_id and "quality_vs_full_pct" in result.metrics:
            log_metrics(RunRef(run.uri, result.run_id, run.experiment_id, run.out_dir),
                        {"quality_vs_full_pct": result.metrics["quality_vs_full_pct"]})  # fmt: skip
    table = rows(results)
    out_dir = Path(run.stage_dir("comparison"))
    markdown = to_markdown(table)
    notes = [missing_reference] if missing_reference else []
    notes += [f"{r.method}: {r.status}, {r.reason}" for r in results if r.status in ("skipped", "failed")]
    document = (
        f"# Method comparison: {config.name}\n\n{markdown}\n"
        "Peak memory is GPU memory allocated on a GPU, else the RAM training added to its process. Latency is "
        "one request at a time, greedy, a reply of a fixed length (the longest reference answer + 2 tokens), as "
        "trained (adapter attached) and merged into the base where the method allows it. Forgetting change is "
        "the mean relative change on the general benchmarks.\n" + "".join(f"\n- {n}" for n in notes)
    )
    (out_dir / "comparison.md").write_text(document, encoding="utf-8")
    write_csv(table, out_dir / "comparison.csv")
    plot(results, out_dir / "comparison.png")
    log_json(run, [r.to_json() for r in results], "comparison/results.json")
    for name in ("comparison.md", "comparison.csv", "comparison.png"):
        log_artifact(run, out_dir / name, "comparison")
    if metric_charts(results, out_dir / "charts"):  # one figure per compared quantity, on the parent run
        log_artifact(run, out_dir / "charts", "charts")
    best = max((r for r in results if r.status == "trained"), key=lambda r: r.metrics.get(r.task_metric, -1e9),
               default=None)  # fmt: skip
    if best:
        set_tags(run, {"tunesmith.best_method": best.method})
    create_table_artifact(key="method-comparison", table=table, description=f"Methods compared on {config.name}")
    create_markdown_artifact(key="method-comparison-report", markdown=document, description="Method comparison")
    return document
