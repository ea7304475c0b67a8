from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.forgetting.stage import base_scorable, run_forgetting, run_forgetting_baseline, trained_scorable
from tunesmith.forgetting.verdict import plan_suite
from tunesmith.records import CuratedData, ForgettingReport, PreparedModel, TrainedModel, change_text
from tunesmith.retraining.continual import Champion, score_old_task, with_old_task
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR
from tunesmith.tracking.datasets import benchmark_datasets, log_datasets
from tunesmith.tracking.mlflow_runs import RunRef, log_json, log_metrics, log_params, set_tags, stage_run


@task(name="benchmark-base-model", timeout_seconds=2 * HOUR)
def benchmark_base_task(run: RunRef, config: RunConfig, model: PreparedModel, methods: list[str]) -> dict[str, Any]:
    """General-capability scores of the base model, taken before training; the suite and the backend are fixed
    here for the after-training runs of `methods`."""
    with stage_run(run, Stage.FORGETTING_BASELINE) as stage:
        work_dir = Path(stage.out_dir) / "benchmarks"
        before = run_forgetting_baseline(config, model, base_scorable(model), work_dir, run.run_id, methods)
        suite, scores = before["suite"], before["scores"]
        log_datasets(stage, benchmark_datasets(suite))
        benchmarks = ", ".join(suite["local"] + suite["harness"])
        log_params(stage, {"suite": suite["why"], "benchmarks": benchmarks, "limit": config.forgetting.limit,
                           "batch_size": suite["batch_size"], "backend": suite["backend"],
                           "backend_why": suite["backend_why"], "cache_key": before["key"]})  # fmt: skip
        if before["cached_from"]:
            set_tags(stage, {"tunesmith.base_scores_from_run": before["cached_from"]})
        log_metrics(stage, {f"{name}_acc": s["acc"] for name, s in scores.items()})
        at_chance = suite.get("at_chance", [])
        if at_chance:
            log_params(stage, {"left_out_at_chance": ", ".join(c["name"] for c in at_chance)})
            log_metrics(stage, {f"{c['name']}_acc": c["accuracy"] for c in at_chance})
            log_metrics(stage, {f"{c['name']}_chance": c["chance"] for c in at_chance})
        log_json(stage, scores, "before.json")
        reused = f" (reused from run {before['cached_from'][:8]})" if before["cached_from"] else ""
        reused += " (scored by vLLM)" if suite["backend"] == "vllm" and not before["cached_from"] else ""
        plan = plan_suite(scores, config.forgetting.threshold)
        log_metrics(stage, {"questions": plan.n, "planned_detectable_drop": plan.detectable,
                            "threshold_points": plan.margin, "resolves_threshold": float(plan.resolves)})  # fmt: skip
        left_out = f"; left out at chance: {', '.join(c['name'] for c in at_chance)}" if at_chance else ""
        progress.done(f"accuracy {plan.accuracy:.3f}{reused}; {plan.text()}{left_out}")
    return before


@task(name="forgetting", timeout_seconds=2 * HOUR)
def forgetting_task(
    run: RunRef, config: RunConfig, model: PreparedModel, trained: TrainedModel, before: dict[str, Any],
    champion: Champion | None = None, data: CuratedData | None = None,
) -> ForgettingReport:  # fmt: skip
    """The same benchmarks, limit and seed on the fine-tuned model, compared with the baseline; with `champion`
    (a continued retraining), also the champion's test split, the new model against the champion."""
    with stage_run(run, Stage.FORGETTING) as stage:
        work_dir = Path(stage.out_dir) / "benchmarks"
        scorable = trained_scorable(model, trained, work_dir, config.forgetting.vllm.lora)
        result = run_forgetting(config, scorable, before, work_dir, trained.record_dir or None)
        report, after = result.report, result.after
        if champion is not None and data is not None:
            report = with_old_task(report, score_old_task(config, data, model, trained, champion), champion)
        log_datasets(stage, benchmark_datasets(before["suite"]))
        for name, row in {**report.per_benchmark, "pooled": report.pooled}.items():
            log_metrics(stage, {f"{name}_{k}": v for k, v in row.items()})
        log_metrics(stage, {"forgetting_flag": float(report.forgetting)})
        tags = {"tunesmith.forgetting": report.verdict, "tunesmith.forgetting_change": change_text(report.pooled),
                "tunesmith.forgetting_flagged": ",".join(report.flagged)}  # fmt: skip
        set_tags(stage, tags)  # the parent run gets the verdict of the training the gates judge, in the report
        log_json(stage, {"before": before["scores"], "after": after, **report.to_json()}, "forgetting.json")
        create_table_artifact(
            key="forgetting",
            table=[{"benchmark": name, **{k: round(v, 4) for k, v in row.items()},
                    "verdict": report.verdicts.get(name, report.pooled_verdict)}
                   for name, row in {**report.per_benchmark, "all (pooled)": report.pooled}.items()],
            description=f"General benchmarks before and after training ({before['suite']['why']})",
        )  # fmt: skip
        kept = " (scores kept from the same training's earlier run)" if result.reused else ""
        if result.reused:
            set_tags(stage, {"tunesmith.forgetting_scores_reused": "true"})
        progress.done(report.headline() + kept)
    return report
