"""Scheduled retraining as a team runs it: a real `prefect server`, `prefect deploy --all` from deployments/,
a process worker, `prefect deployment run ... --watch`, and a real `mlflow server` holding the runs."""

import json
import os
import subprocess

import httpx
import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, TRAIN_FAST, write_config
from tests.services import BIN, background, mlflow_server, prefect_server

pytestmark = pytest.mark.e2e


def prefect(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def flow_runs(api: str, deployment_id: str) -> list[dict]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def test_on_demand_deployment_trains_then_skips_unchanged_data(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    parameters = json.dumps({"config_path": str(config), "overrides": []})

    with prefect_server(tmp_path / "prefect") as env, mlflow_server(tmp_path / "mlflow") as tracking_uri:
        env = {**env, "MLFLOW_TRACKING_URI": tracking_uri, "TUNESMITH_HOME": str(REPO),
               "PREFECT_WORKER_QUERY_SECONDS": "2"}  # fmt: skip
        prefect(env, "work-pool", "create", "tunesmith-process", "--type", "process")
        prefect(env, "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
        worker = [str(BIN / "prefect"), "worker", "start", "--pool", "tunesmith-process", "--limit", "1"]
        with background(worker, tmp_path / "worker.log", env, cwd=tmp_path):
            on_demand_run = ["deployment", "run", "finetune-pipeline/on-demand", "--params", parameters, "--watch",
                             "--watch-interval", "1"]  # fmt: skip
            first = prefect(env, *on_demand_run)
            second = prefect(env, *on_demand_run)

        api = env["PREFECT_API_URL"]
        nightly = httpx.get(f"{api}/deployments/name/finetune-pipeline/nightly-retrain", timeout=10).json()
        on_demand = httpx.get(f"{api}/deployments/name/finetune-pipeline/on-demand", timeout=10).json()
        weekly = httpx.get(f"{api}/deployments/name/compare-methods/weekly", timeout=10).json()
        runs = flow_runs(api, on_demand["id"])

        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name("e2e")
        parents = client.search_runs([experiment.experiment_id], "tags.`tunesmith.kind` = 'pipeline'")
        children = client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` != ''")
        versions = client.search_model_versions("name = 'test-run'")

    log = (tmp_path / "worker.log").read_text()
    states = [(r["state"]["type"], r["state"]["name"]) for r in runs]
    assert len(states) == 2 and all(kind == "COMPLETED" for kind, _ in states), log[-4000:]
    assert states[0][1] in ("Promoted", "Not promoted") and states[1][1] == "Skipped: inputs unchanged"
    assert states[0][1] in first.stdout + first.stderr and "Skipped" in second.stdout + second.stderr
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["parameters"]["config_path"] == "configs/quickstart.yaml" and not on_demand["schedules"]
    assert [s["schedule"]["cron"] for s in weekly["schedules"]] == ["0 3 * * 0"]

    assert len(parents) == 2  # the trained run and the skipped one, both recorded
    trained = next(p for p in parents if p.data.tags.get("tunesmith.trained") == "true")
    skipped = next(p for p in parents if p is not trained)
    names = {c.info.run_name for c in children if c.data.tags["mlflow.parentRunId"] == trained.info.run_id}
    assert {"fingerprint", "curation", "decision", "training", "evaluation", "forgetting"} <= names
    assert {c.info.run_name for c in children if c.data.tags["mlflow.parentRunId"] == skipped.info.run_id} == {
        "fingerprint"
    }
    assert skipped.data.tags["tunesmith.data_fingerprint"] == trained.data.tags["tunesmith.data_fingerprint"]
    assert len(versions) == 1  # artifacts went through the server's artifact store into the registry
    assert os.listdir(tmp_path / "mlflow" / "artifacts")
