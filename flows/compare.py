"""compare-methods: curate once -> base model -> every method (train, evaluate, forgetting, latency) -> table."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.states import Completed

from tunesmith.config import RunConfig, load_config
from tunesmith.console import progress
from tunesmith.quiet import quiet_libraries
from tunesmith.records import MethodResult
from tunesmith.stages import Stage, in_order
from tunesmith.tasks.comparison import assess_base_task, compare_method_task, comparison_table_task, plan_methods_task
from tunesmith.tasks.curation import curate_task
from tunesmith.tasks.engine import run_all, task_runner
from tunesmith.tasks.forgetting import benchmark_base_task
from tunesmith.tasks.models import prepare_model_task
from tunesmith.tasks.orchestration import record_failure
from tunesmith.tasks.retraining import check_inputs_task
from tunesmith.tracking.pipeline_run import pipeline_run


@dataclass
class ComparisonResult:
    run_id: str
    output_dir: str
    results: list[MethodResult]
    report: str


@flow(name="compare-methods", on_failure=[record_failure], on_crashed=[record_failure])
def compare_methods(config_path: str, methods: list[str] | None = None, overrides: list[str] | None = None):
    quiet_libraries()
    config = load_config(config_path, [*(overrides or []), *([f"comparison.methods={methods}"] if methods else [])])
    experiment = config.comparison.experiment or f"{config.tracking.experiment}-methods"
    progress.plan(comparison_stages(config, config.comparison.methods))
    with pipeline_run(config, kind="comparison", experiment=experiment) as run:
        inputs = check_inputs_task(run, config)
        model = prepare_model_task(run, config)
        data = curate_task(run, config, model, inputs.data)
        methods = config.comparison.methods
        before = benchmark_base_task(run, config, model, methods) if config.forgetting.active else None
        plans, skipped = plan_methods_task(run, config, data, model, methods)
        runnable = list(plans)
        progress.plan(comparison_stages(config, runnable))
        base = assess_base_task(run, config, data, model, before)
        calls = [dict(run=run, config=config, data=data, model=model, plan=p, before=before) for p in plans.values()]
        states = run_all(compare_method_task, task_runner(config.comparison), calls)
        results = [base, *(outcome(m, s) for m, s in zip(runnable, states, strict=True)), *skipped]
        report = comparison_table_task(run, config, results)
        failed = [r.method for r in results if r.status == "failed"]
        name = f"Compared, {len(failed)} failed" if failed else "Compared"
        return Completed(name=name, message=", ".join(failed) or None,
                         data=ComparisonResult(run.run_id, run.out_dir, results, report))  # fmt: skip


def comparison_stages(config: RunConfig, methods: list[str]) -> list[str]:
    """The stages of a comparison in order, each method's training and measuring one of them: what the console's
    [i/n] counts."""
    baseline = [Stage.FORGETTING_BASELINE] if config.forgetting.active else []
    shared = in_order([Stage.FINGERPRINT, Stage.MODEL, Stage.CURATION, *baseline, Stage.BASE])
    return [*shared, *methods, Stage.COMPARISON]


def outcome(method: str, state) -> MethodResult:
    """A finished method's result, or a row saying why it failed (the other methods carry on)."""
    if state.is_completed():
        return state.result()
    return MethodResult(method, "failed", f"{state.name}: {state.message}"[:500])
