"""The method comparison as a user sees it: a real `mlflow server`, a small comparison with the tiny model, then
headless Chromium (the system's, driven by Playwright) on the experiment page and MLflow's compare view."""

import json
import shutil

import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, write_config
from tests.services import mlflow_server
from tests.test_compare import COMPARE_FAST
from tunesmith.flows.compare import compare_methods

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root in a closed network: no sandbox, and no background calls to Google's services that would hang.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
METHODS = ["full", "lora", "ia3"]
SCREENSHOTS = REPO / "benchmarks" / "results" / "screenshots"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (make test installs Debian's chromium)")


@pytest.mark.slow
def test_comparison_runs_and_metrics_show_in_the_mlflow_ui(prefect_server, tmp_path, tiny_model, small_tickets,
                                                            monkeypatch):  # fmt: skip
    from playwright.sync_api import expect, sync_playwright

    with mlflow_server(tmp_path / "mlflow") as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, COMPARE_FAST)
        out = compare_methods(str(config), METHODS, ["forgetting.enabled=false"])
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("cmp-methods")
        children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{out.run_id}'")
        compared = [r for r in children if r.data.tags.get("tunesmith.kind") == "comparison-method"]
        run_ids = json.dumps([r.info.run_id for r in compared])

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{uri}/#/experiments/{experiment.experiment_id}/runs")
            expect(page.get_by_text("test-run", exact=True).first).to_be_visible(timeout=30_000)  # the parent run
            page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()  # expand its children
            for name in ["base", *METHODS]:
                expect(page.get_by_role("link", name=name, exact=True)).to_be_visible(timeout=10_000)
            page.screenshot(path=str(SCREENSHOTS / "mlflow_experiment.png"))

            page.goto(f'{uri}/#/compare-runs?runs={run_ids}&experiments=["{experiment.experiment_id}"]')
            expect(page.get_by_text(f"Comparing {len(compared)} Runs")).to_be_visible(timeout=30_000)
            for name in ["base", *METHODS]:  # one run per method, plus the untrained base model
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            body = page.inner_text("body")
            for metric in ("quality_vs_full_pct", "test_accuracy", "trainable_pct", "peak_memory_mb",
                           "latency_ms_unmerged", "latency_ms_merged", "adapter_size_mb", "tokens_per_s"):  # fmt: skip
                assert metric in body, metric
            page.screenshot(path=str(SCREENSHOTS / "mlflow_compare_methods.png"))
            browser.close()

    assert len(compared) == 1 + len(METHODS)
    shot = SCREENSHOTS / "mlflow_compare_methods.png"
    assert shot.stat().st_size > 20_000
