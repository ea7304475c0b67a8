"""Every problem a user can cause ends the command with one short paragraph (what, where, what to do) and exit
code 1 (data and run problems) or 2 (usage and configuration); the traceback goes to the log only."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, TRAIN_FAST, write_config, write_jsonl
from tests.services import free_port
from tunesmith.flows.cli import app

runner = CliRunner()


def run(config, *overrides: str):
    return runner.invoke(app, ["run", str(config), *(arg for o in overrides for arg in ("--set", o))])


def assert_paragraph(result, code: int, *phrases: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


def test_an_unknown_config_key(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, "training:\n  lerning_rate: 0.1\n")
    assert_paragraph(run(config), 2, f"config error in {config}", "did you mean training.learning_rate?")


def test_a_missing_data_file(tmp_path, tiny_model):
    config = write_config(tmp_path / "run.yaml", tmp_path / "nowhere.jsonl", tiny_model)
    assert_paragraph(run(config), 2, "data.path", "nowhere.jsonl' does not exist")


def test_an_empty_data_file(prefect_server, mlflow_uri, tmp_path, tiny_model):
    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "empty.jsonl", []), tiny_model, TRAIN_FAST)
    assert_paragraph(run(config), 1, "error in curation", "no rows to curate", "fix: ")


def test_undecodable_rows_over_the_reject_limit(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(small_tickets.read_bytes() + b"\xff\xfe not utf-8\n" * 20)
    config = write_config(tmp_path / "run.yaml", data, tiny_model, TRAIN_FAST)
    assert_paragraph(
        run(config),
        1,
        "error in curation",
        "20 of 180 rows rejected",
        f"20 rows: undecodable bytes (not UTF-8) at byte 0 ({data} lines 161, 162, 163, ... 17 more)",
    )


def test_a_json_file_that_is_not_json(prefect_server, mlflow_uri, tmp_path, tiny_model):
    data = tmp_path / "rows.json"
    data.write_text('[{"text": "a", "label": "billing"},\n {"text": ')
    config = write_config(tmp_path / "run.yaml", data, tiny_model, TRAIN_FAST)
    assert_paragraph(run(config), 1, "error in inputs", f"{data} line 2 column 11: not valid JSON", "where: data.path")


def test_a_failing_expectation_suite(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    assert_paragraph(
        run(config, "data.min_tokens=1000"),
        1,
        "Great Expectations validation failed",
        "on n_tokens",
        "curation_report.md",
    )


def test_a_model_that_cannot_be_loaded(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model / "config.json").read_text())  # no tokenizer, no weights
    config = write_config(tmp_path / "run.yaml", small_tickets, broken, TRAIN_FAST)
    assert_paragraph(run(config), 2, f"model '{broken}' cannot be loaded", "where: model", "fix: point `model:`")


def test_a_method_whose_memory_estimate_does_not_fit(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    result = run(config, "decision.force=finetune", "training.method=full", "decision.memory_gb=0.001")
    assert_paragraph(result, 1, "error in decision: training with full needs an estimated", "where: training.method")
    assert "[6/10] training" not in result.output  # stopped before training started


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens on a port just freed


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunesmith.flows.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.e2e
def test_an_unreachable_mlflow_server_stops_the_run_before_any_work(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    url = _dead_url()
    done = _cli("run", str(config), env=os.environ | {"MLFLOW_TRACKING_URI": url})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the MLflow tracking server at {url} does not answer (connection refused" in done.stderr
    assert "where: MLFLOW_TRACKING_URI" in done.stderr
    assert "[1/" not in done.stdout and "Retrying" not in done.stdout + done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_an_unreachable_prefect_api_stops_the_run_before_any_work(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    url = f"{_dead_url()}/api"
    done = _cli("run", str(config), env=os.environ | {"PREFECT_API_URL": url})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the Prefect API at {url} does not answer" in done.stderr and "where: PREFECT_API_URL" in done.stderr
    assert "[1/" not in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["decide", "compare", "check"])
def test_every_command_refuses_a_bad_config_with_exit_code_2(command, tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, "training:\n  epochs: -1\n")
    assert_paragraph(runner.invoke(app, [command, str(config)]), 2, "training.epochs")
