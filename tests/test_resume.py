"""Kill a real training process mid-run; running the same config again resumes from its last checkpoint."""

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from tests.conftest import copy_store, write_config

pytestmark = pytest.mark.e2e

RESUMABLE = """decision:
  force: finetune
training:
  method: lora
  max_steps: 60
  learning_rate: 0.001
  eval_steps: 10
  save_steps: 10
  early_stopping_patience: null
forgetting:
  enabled: false
tracking:
  experiment: resume
"""


def _run(config, env):
    command = [sys.executable, "-m", "tunesmith.flows.cli", "run", str(config)]
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_training_run_resumes_from_its_last_checkpoint(
    tmp_path, tiny_model, small_tickets, empty_mlflow_store
):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, RESUMABLE)
    env = os.environ | {"MLFLOW_TRACKING_URI": copy_store(empty_mlflow_store, tmp_path), "PYTHONUNBUFFERED": "1"}
    first = _run(config, env)
    deadline = time.time() + 600  # curation and baselines come first; a shared machine is slower
    checkpoints = tmp_path / "runs" / "checkpoints"
    while not list(checkpoints.glob("*/checkpoint-20/trainer_state.json")):
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    saved = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("*/checkpoint-*"))
    assert saved and saved[-1] < 60

    second = _run(config, env)
    output = second.communicate(timeout=600)[0].decode()
    assert second.returncode == 0, output[-3000:]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("resume")
    training = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "training"]
    finished = [r for r in training if r.info.status == "FINISHED"]
    assert len(finished) == 1
    metrics = finished[0].data.metrics
    assert metrics["resumed_from_step"] >= 20 and metrics["steps"] == 60
    assert not any(checkpoints.glob("*/checkpoint-*"))  # cleaned up once the run finished


def test_a_checkpoint_cut_short_by_a_kill_is_not_resumed_from(tmp_path):
    """A run killed while saving leaves the newest checkpoint's trainer_state.json empty (seen in this file's test
    above): resuming takes the newest one whose state parses."""
    from tunesmith.training.sft import last_checkpoint

    for step, state in ((10, '{"global_step": 10}'), (20, '{"global_step": 20}'), (30, ""), (40, '{"global_')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-50").mkdir()  # killed before its state was written
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-20")
    assert last_checkpoint(tmp_path / "none") is None
