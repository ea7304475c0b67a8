"""What a person sees: numbered stages, progress, a result table and one-paragraph errors; the libraries' own
output in run.log. The command runs as a real process with its output on pipes, as in CI or a log file."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TRAIN_FAST, write_config, write_jsonl
from tunesmith.config import ConfigError
from tunesmith.console import progress
from tunesmith.console.progress import LineReporter, Stage
from tunesmith.console.session import explain
from tunesmith.errors import DataError

STAGE = re.compile(r"^\[(\d+)/(\d+)\] (.+)$")


def tunesmith(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tunesmith.flows.cli", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def user_env(tmp_path: Path) -> dict[str, str]:
    """A new user's shell: no Prefect server configured, MLflow in a local SQLite file, the repository importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    return env | {"PYTHONPATH": str(REPO), "PREFECT_HOME": str(tmp_path / "prefect-home"),
                  "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # fmt: skip


def stage_lines(output: str) -> list[tuple[int, int, str]]:
    return [(int(m[1]), int(m[2]), m[3]) for m in map(STAGE.match, output.splitlines()) if m]


def run_folder(tmp_path: Path) -> Path:
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p.name[0].isdigit()]
    return folder


@pytest.fixture
def recorded():
    lines: list[str] = []
    previous = progress.use(LineReporter(lines.append, min_interval_s=0))
    yield lines
    progress.use(previous)
    progress.plan([])


def test_plain_lines_number_the_stages_and_report_a_bar_every_tenth(recorded):
    progress.plan(["curation", "training"])
    with progress.stage("curation"):
        progress.done("154 of 160 rows kept")
    with progress.stage("training", "lora"), progress.bar("step", 20) as bar:
        for _ in range(20):
            progress.advance(loss="1.000")
    assert recorded[0] == "[1/2] curation"
    assert recorded[1].startswith("      done in ") and recorded[1].endswith(": 154 of 160 rows kept")
    assert recorded[2] == "[2/2] training lora"
    steps = [line for line in recorded if line.strip().startswith("step ")]
    assert len(steps) == 10 and steps[0].strip().startswith("step 2/20, loss 1.000")  # nine tenths and the end
    assert steps[-1].strip().startswith("step 20/20, loss 1.000 in ") and bar.completed == 20
    assert recorded[-1].strip().startswith("done in ")


def test_a_failing_stage_is_reported_and_remembered(recorded):
    progress.plan(["fingerprint", "curation"])
    with pytest.raises(DataError), progress.stage("curation"):
        raise DataError("no rows")
    assert recorded[-1].strip().startswith("failed after")
    assert progress.last_failed().label == "curation"


def test_errors_are_one_paragraph_with_where_fix_and_exit_code():
    stage = Stage("curation", "curation", 3, 10)
    text, code = explain(DataError("data/x.jsonl has no rows", "data.path", "add examples"), stage, Path("run.log"))
    assert code == 1
    assert text.splitlines() == [
        "error in curation: data/x.jsonl has no rows", "  where: data.path", "  fix: add examples",
        "  full log: run.log",
    ]  # fmt: skip
    text, code = explain(ConfigError("config error in a.yaml: trainig is not a known key"), None, None)
    assert (text, code) == ("config error in a.yaml: trainig is not a known key", 2)
    assert explain(KeyboardInterrupt(), stage, None)[1] == 130
    text, code = explain(RuntimeError("boom\nmore"), stage, Path("run.log"))
    assert code == 1 and text.startswith("error in curation: RuntimeError: boom") and "traceback is in the log" in text


@pytest.mark.e2e
def test_a_run_shows_each_stage_once_in_order_and_keeps_library_output_in_run_log(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    done = tunesmith("run", str(config), env=user_env(tmp_path), cwd=tmp_path)
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown

    stages = stage_lines(done.stdout)
    labels = ["inputs", f"model {tiny_model}", "curation", "decision", "forgetting baseline", "training lora",
              "evaluation", "forgetting", "promotion", "report"]  # fmt: skip
    assert stages == [(i, 10, label) for i, label in enumerate(labels, start=1)], done.stdout
    assert "Traceback" not in shown
    assert not [line for line in shown.splitlines() if "warning" in line.lower()], shown
    assert "telemetry" not in shown.lower()
    assert "{'loss'" not in shown  # the Trainer's own log lines
    assert done.stderr == ""
    table = done.stdout.split("Result: ", 1)[1]
    for row in ("decision", "accuracy", "task gate", "forgetting gate", "model", "outputs", "summary", "log", "MLflow"):
        assert re.search(rf"^  {row} ", table, re.M), row

    log = (run_folder(tmp_path) / "run.log").read_text()
    assert re.search(rf"^  log +{re.escape(str(run_folder(tmp_path) / 'run.log'))}", done.stdout, re.M)
    assert "Beginning flow run" in log and "{'loss'" in log  # Prefect's and the Trainer's output
    assert all(f"[{i}/10] {label}" in log for i, label in enumerate(labels, start=1))


def test_verbose_shows_the_library_logs_too(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    """The plain run's console holds none of them (the test above)."""
    from typer.testing import CliRunner

    from tunesmith.flows.cli import app

    quick = TRAIN_FAST + "forgetting:\n  enabled: false\npromotion:\n  enabled: false\n"
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, quick)
    verbose = CliRunner().invoke(app, ["run", str(config), "--verbose"])
    assert verbose.exit_code == 0, verbose.output
    assert "{'loss'" in verbose.output  # the Trainer's own log lines
    assert "[5/7] training lora" in verbose.output


@pytest.mark.e2e
def test_a_run_on_an_empty_file_ends_in_one_paragraph_without_a_traceback(prefect_server, tmp_path, tiny_model):
    from prefect.settings import PREFECT_API_URL

    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "empty.jsonl", []), tiny_model, TRAIN_FAST)
    done = tunesmith("run", str(config), env=user_env(tmp_path) | {"PREFECT_API_URL": PREFECT_API_URL.value()},
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert [label for *_, label in stage_lines(done.stdout)] == ["inputs", f"model {tiny_model}", "curation"]
    assert "Traceback" not in done.stdout + done.stderr
    paragraph = done.stderr.strip().splitlines()
    assert paragraph[0] == "error in curation: the data did not pass curation:"
    assert f"no rows to curate: {tmp_path / 'empty.jsonl'} holds no data" in paragraph[1]
    assert paragraph[-1] == f"  full log: {run_folder(tmp_path) / 'run.log'}"
    assert "Traceback" in (run_folder(tmp_path) / "run.log").read_text()  # it is kept for whoever needs it
