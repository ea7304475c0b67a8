"""The method comparison: table arithmetic, and the flow with every default method on the tiny model as parallel
tasks on a local Dask cluster of two workers (the shared comparison), one method over two processes. Real MLflow
server and store, real Prefect."""

import csv
import itertools
import os

import pytest
from mlflow import MlflowClient

from tests.conftest import COMPARE_FAST, DEFAULT_METHODS, write_config
from tunesmith.comparison.table import add_quality_vs_full, rows, to_markdown, write_csv
from tunesmith.flows.compare import compare_methods
from tunesmith.records import MethodResult

SAME_METRICS = {"trainable_pct", "peak_memory_mb", "train_wall_s", "tokens_per_s", "test_accuracy",
                "quality_vs_full_pct", "forgetting_change_pct", "adapter_size_mb", "latency_ms_unmerged"}  # fmt: skip


def result(method: str, accuracy: float | None, status: str = "trained", **metrics) -> MethodResult:
    values = {"test_accuracy": accuracy, **metrics} if accuracy is not None else metrics
    return MethodResult(method, status, metrics=values, task_metric="test_accuracy")


def test_quality_is_relative_to_full_fine_tuning(tmp_path):
    results = [result("base", 0.2), result("full", 0.8), result("lora", 0.76, latency_ms_merged=5.0),
               result("prompt", None, status="failed")]  # fmt: skip
    assert add_quality_vs_full(results) is None
    assert [r.metrics.get("quality_vs_full_pct") for r in results] == [25.0, 100.0, 95.0, None]
    table = rows(results)
    assert table[2]["accuracy"] == 0.76 and table[2]["quality vs full %"] == 95.0
    assert table[2]["latency ms (merged)"] == 5.0 and table[1]["latency ms (merged)"] is None
    markdown = to_markdown(table)
    assert (
        markdown.splitlines()[0].startswith("| method | status | trainable % |") and "| prompt | failed |" in markdown
    )
    with write_csv(table, tmp_path / "t.csv").open() as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["base", "full", "lora", "prompt"]


def test_without_full_fine_tuning_the_table_says_why():
    results = [result("lora", 0.7)]
    assert "full fine-tuning was not run" in add_quality_vs_full(results)
    assert "quality_vs_full_pct" not in results[0].metrics


def _children(client: MlflowClient, parent_id: str):
    return {r.info.run_name: r for r in client.search_runs(
        [client.get_run(parent_id).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")}  # fmt: skip


@pytest.mark.e2e
def test_every_default_method_is_trained_measured_and_tabled(shared_runs, prefect_server):
    from prefect.client.orchestration import get_client

    out = shared_runs.comparison
    methods = DEFAULT_METHODS
    assert [r.method for r in out.results] == ["base", *methods]
    assert all(r.status == "trained" for r in out.results[1:]), [(r.method, r.reason) for r in out.results]
    client = MlflowClient(shared_runs.uri)
    parent = client.get_run(out.run_id)
    assert parent.data.tags["tunesmith.kind"] == "comparison"
    assert client.get_experiment(parent.info.experiment_id).name == "cmp-methods"
    children = _children(client, out.run_id)
    for method in methods:  # one run per method, the same metric names on each
        assert set(children[method].data.metrics) >= SAME_METRICS, method
        assert children[method].data.tags["tunesmith.method"] == method
    metrics = {m: children[m].data.metrics for m in methods}
    assert metrics["full"]["quality_vs_full_pct"] == pytest.approx(100.0)
    assert metrics["full"]["trainable_pct"] == pytest.approx(100.0)
    assert all(metrics[m]["trainable_pct"] < 30 for m in methods if m != "full")  # tiny model: large shares
    # merging applies to LoRA, QLoRA and IA3 only; full fine-tuning ships the whole model
    assert {m for m in methods if "latency_ms_merged" in metrics[m]} == {"lora", "qlora", "ia3"}
    assert all(metrics[m]["adapter_size_mb"] < metrics["full"]["adapter_size_mb"] / 2 for m in methods[1:])
    assert {"base", "forgetting-baseline", "curation"} <= set(children)

    artifacts = {a.path for a in client.list_artifacts(out.run_id, "comparison")}
    assert {"comparison/comparison.md", "comparison/comparison.csv", "comparison/comparison.png"} <= artifacts
    charts = {a.path for a in client.list_artifacts(out.run_id, "charts")}  # one per compared quantity
    assert charts == {f"charts/{i}_{key}.png" for i, key in enumerate(
        ["test_accuracy", "quality_vs_full_pct", "forgetting_change_pct", "peak_memory_mb", "train_wall_s",
         "latency_ms_unmerged"])}  # fmt: skip
    lines = out.report.splitlines()
    assert sum(line.startswith(f"| {m} |") for line in lines for m in ["base", *methods]) == 8
    with get_client(sync_client=True) as prefect:
        artifact = prefect.read_latest_artifacts()
    assert any(a.key == "method-comparison" for a in artifact)


@pytest.mark.e2e
def test_methods_run_as_parallel_tasks_on_a_local_dask_cluster(shared_runs):
    """The shared comparison ran on a local Dask cluster of two workers."""
    out = shared_runs.comparison
    children = _children(MlflowClient(shared_runs.uri), out.run_id)
    workers = {children[m].data.tags["tunesmith.worker"] for m in DEFAULT_METHODS}
    assert len(workers) == 2 and f"pid {os.getpid()}" not in " ".join(workers)  # two worker processes, not ours
    spans = sorted((children[m].info.start_time, children[m].info.end_time) for m in DEFAULT_METHODS)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))  # methods' runs overlapped


def test_compare_refuses_an_unknown_method_before_starting(tmp_path, tiny_model, small_tickets):
    from typer.testing import CliRunner

    from tunesmith.flows.cli import app

    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, COMPARE_FAST)
    result = CliRunner().invoke(app, ["compare", str(config), "--method", "lora", "--method", "lorra"])
    assert result.exit_code == 2 and "comparison.methods" in result.output and "lorra" in result.output


@pytest.mark.slow
def test_a_method_trained_over_two_processes_is_compared_like_any_other(
    prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets
):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, COMPARE_FAST)
    out = compare_methods(str(config), ["lora"], ["forgetting.enabled=false", "training.distributed.strategy=ddp",
                                                  "training.distributed.num_processes=2"])  # fmt: skip

    assert [(r.method, r.status) for r in out.results] == [("base", "base"), ("lora", "trained")]
    lora = _children(MlflowClient(mlflow_uri), out.run_id)["lora"].data.metrics
    assert lora["world_size"] == 2 and lora["rank1_tokens_per_s"] > 0
    assert 0.0 <= lora["test_accuracy"] <= 1.0
