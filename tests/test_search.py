"""The hyperparameter search: its pieces on real Optuna studies, then whole searches on the tiny model through
the real flows (Prefect, MLflow store, Optuna storage): pruning, child runs, the pipeline training with the
chosen settings, a forgetting-aware Pareto search, and a search killed mid-way that resumes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, write_config
from tunesmith.config import ConfigError, load_config
from tunesmith.config.schema import SearchConfig
from tunesmith.flows.pipeline import finetune_pipeline
from tunesmith.flows.tune import tune_hyperparameters
from tunesmith.search.space import Dimension, as_optuna, from_optuna, suggest, with_settings
from tunesmith.search.study import TrialOutcome, choose, objective_values, open_study, outcomes, prepare, tell
from tunesmith.tasks.engine import gpu_for

SEARCH = """training:
  method: lora
  batch_size: 8
  search:
    trials: 4
    max_steps: 12
    evaluations: 3
    startup_trials: 2
    validation_examples: 16
    # two sound trials first, then a hopeless one, which the pruner judges against them
    start_with_defaults: false
    enqueue: [{learning_rate: 0.02}, {learning_rate: 0.03}, {learning_rate: 100.0}]
    space:
      learning_rate: {low: 0.003, high: 0.05, log: true}
      lora.r: {choices: [4, 8]}
      epochs: null
      lora.target_modules: null
evaluation:
  max_examples: 16
forgetting:
  enabled: false
tracking:
  experiment: search
"""


def test_objectives_weigh_forgetting_as_configured():
    assert objective_values(SearchConfig(objective="metric"), 0.8, -10.0) == [0.8]
    # a 10% relative drop with penalty 1 costs 0.1 of the metric; an improvement is not rewarded
    assert objective_values(SearchConfig(objective="penalized"), 0.8, -10.0) == pytest.approx([0.7])
    assert objective_values(SearchConfig(objective="penalized"), 0.8, 3.0) == pytest.approx([0.8])
    assert objective_values(SearchConfig(objective="pareto"), 0.8, -2.5) == [0.8, -2.5]
    with pytest.raises(ValueError, match="forgetting"):
        objective_values(SearchConfig(objective="pareto"), 0.8, None)


def test_a_dimension_is_a_range_or_choices_and_list_choices_survive_optuna():
    with pytest.raises(ValueError, match="low and high"):
        Dimension(low=1e-4)
    with pytest.raises(ValueError, match="log-scaled"):
        Dimension(low=0, high=1, log=True)
    space = {
        "lora.target_modules": Dimension(choices=["all-linear", ["q_proj", "v_proj"]]),
        "lora.r": Dimension(choices=[8, 16]),
    }
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(as_optuna({"lora.target_modules": ["q_proj", "v_proj"], "lora.r": 16}, space))
    trial = study.ask()
    values = suggest(trial, space)
    assert values == {"lora.target_modules": ["q_proj", "v_proj"], "lora.r": 16}
    assert from_optuna(trial.params, space) == values
    assert with_settings({"lora": {"r": 4, "alpha": 8}}, values)["lora"] == {
        "r": 16, "alpha": 8, "target_modules": ["q_proj", "v_proj"]
    }  # fmt: skip


def test_an_unknown_search_key_is_refused_when_the_config_loads(tmp_path, tiny_model, small_tickets):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, SEARCH)
    with pytest.raises(ConfigError, match=r"search\.space\.lora\.rank: not a training setting"):
        load_config(config, ["training.search.space={lora.rank: {choices: [4]}}"])
    with pytest.raises(ConfigError, match=r"search\.space\.lora\.r: 0: Input should be greater"):
        load_config(config, ["training.search.space={lora.r: {choices: [0, 4]}}"])  # rank 0 is not a rank
    with pytest.raises(ConfigError, match="forgetting"):
        load_config(config, ["training.search.objective=pareto"])  # forgetting is off in SEARCH


def test_each_local_worker_keeps_one_gpu_of_several():
    assert [gpu_for(f"tcp://127.0.0.1:4000-{i}", 4) for i in range(5)] == [0, 1, 2, 3, 0]
    assert [gpu_for(i, 2) for i in range(3)] == [0, 1, 0]
    assert gpu_for(0, 1) is None and gpu_for(None, 8) is None  # one GPU: trials take turns on it


def test_a_pareto_study_keeps_its_front_and_chooses_within_the_forgetting_threshold():
    settings = SearchConfig(objective="pareto", trials=4)
    study = open_study("pareto", "sqlite:///:memory:", settings)
    space = {"learning_rate": Dimension(low=1e-4, high=1e-2, log=True)}
    # (metric, forgetting change %): trial 0 is best but forgets 9%; 1 and 2 are on the front within 5%; 3 is dominated
    for metric, change in [(0.9, -9.0), (0.8, -4.0), (0.7, -1.0), (0.6, -3.0)]:
        trial = study.ask()
        suggest(trial, space)
        tell(study, trial.number, TrialOutcome(trial.number, "complete", {}, [metric, change]))
    best, why, front = choose(study, settings, outcomes(study, space), threshold_pct=5.0, metric="accuracy")
    assert front == [0, 1, 2]
    assert best.number == 1
    assert "within 5%" in why and "trial 0: accuracy 0.9000, forgetting -9.0%" in why


def test_a_search_left_running_is_resumed_with_the_interrupted_trial_run_again(tmp_path):
    settings = SearchConfig(trials=3, start_with_defaults=True)
    space = {"learning_rate": Dimension(low=1e-4, high=1e-2, log=True)}
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study("resume", storage, settings)
    assert prepare(study, settings, space, {"learning_rate": 2e-3}) == 3
    done = study.ask()
    assert suggest(done, space) == {"learning_rate": 2e-3}  # the defaults come first
    tell(study, done.number, TrialOutcome(done.number, "complete", {}, [0.5]))
    interrupted = study.ask()
    lr = suggest(interrupted, space)["learning_rate"]  # ... and the process is killed here
    again = open_study("resume", storage, settings)
    assert prepare(again, settings, space, {"learning_rate": 2e-3}) == 2  # the finished trial counts
    retried = again.ask()
    assert suggest(retried, space) == {"learning_rate": lr}


def trial_runs(client: MlflowClient, search_run_id: str):
    runs = client.search_runs(
        [client.get_run(search_run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{search_run_id}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["tunesmith.trial"]))


def test_the_pipeline_searches_prunes_logs_each_trial_and_trains_with_the_best(
    prefect_server, mlflow_uri, tmp_path, tiny_model, learnable_tickets
):
    """Also: under a memory budget where the configured batch of 32 does not fit (LoRA on the tiny model needs about
    17 MB at batch 8 and 64 tokens, 66 MB at batch 32 and 32 tokens), the decision's plan shrinks the micro-batch,
    and every trial trains at the shrunk batch (with accumulation keeping the batch of 32), as the final training."""
    config = write_config(tmp_path / "run.yaml", learnable_tickets, tiny_model, SEARCH)
    budget = ["training.batch_size=32", "decision.memory_gb=0.02"]  # 0.018 GB usable at the 0.9 headroom
    result = finetune_pipeline(str(config), ["training.max_steps=12", *budget])
    search = json.loads(next(Path(result.output_dir).glob("search/search.json")).read_text())
    states = {t["number"]: t["state"] for t in search["trials"]}
    assert len(states) == 4
    assert states[2] == "pruned"  # learning rate 100: diverged or fell behind, never scored
    assert sum(s == "complete" for s in states.values()) >= 2
    best = search["best"]
    assert best["state"] == "complete"
    scored = [t for t in search["trials"] if t["state"] == "complete"]
    assert best["values"][0] == max(t["values"][0] for t in scored)
    ties = [t for t in scored if t["values"][0] == best["values"][0]]
    assert best["metrics"]["best_eval_loss"] == min(t["metrics"]["best_eval_loss"] for t in ties)

    client = MlflowClient(mlflow_uri)
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}' and tags.`tunesmith.stage` = 'search'"
    )
    (search_run,) = children
    trials = trial_runs(client, search_run.info.run_id)
    assert [r.data.tags["tunesmith.trial_state"] for r in trials] == [states[n] for n in sorted(states)]
    assert all("learning_rate" in r.data.params for r in trials)
    final = json.loads((Path(result.output_dir) / "decision" / "decision_record.json").read_text())["training_plan"]
    batch, accumulation = final["training"]["batch_size"], final["training"]["gradient_accumulation_steps"]
    assert batch < 32 and batch * accumulation >= 32 and final["sources"]["batch_size"] == "memory plan"
    assert all(r.data.params["plan.batch_size"] == str(batch) for r in trials)
    assert all(r.data.params["plan.source.batch_size"] == "memory plan" for r in trials)
    assert search_run.data.params["best.learning_rate"] == str(best["settings"]["learning_rate"])

    # the final training ran with the chosen trial's settings, and the decision record says so
    manifest = json.loads((Path(result.output_dir) / "training" / "model" / "tunesmith_model.json").read_text())
    assert manifest["hyperparameters"]["learning_rate"] == pytest.approx(best["settings"]["learning_rate"])
    assert manifest["training"]["lora"]["r"] == best["settings"]["lora.r"]
    record = json.loads((Path(result.output_dir) / "decision" / "decision_record.json").read_text())
    assert record["search"]["best"]["number"] == best["number"]
    assert "Hyperparameter search" in Path(result.summary_path).read_text()


def test_tune_with_forgetting_returns_a_pareto_front(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    questions = REPO / "data" / "general_knowledge.jsonl"
    extra = SEARCH.replace("enabled: false", f"limit: 8\n  benchmarks: [{{name: gk, path: {questions}}}]")
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, extra)
    # trials as parallel tasks on a local Dask cluster of two workers, as the comparison engine runs methods
    result = tune_hyperparameters(
        str(config),
        ["training.search.objective=pareto", "training.search.trials=3", "training.search.enqueue=[]",
         "comparison.engine=dask", "comparison.workers=2"],
    )  # fmt: skip
    assert len(result.trials) == 3 and all(t.state == "complete" for t in result.trials)
    assert all(len(t.values) == 2 and "forgetting_change_pct" in t.metrics for t in result.trials)
    assert result.front and result.best.number in result.front
    # nothing on the front is dominated by another scored trial
    for n in result.front:
        mine = next(t.values for t in result.trials if t.number == n)
        assert not any(o.values[0] >= mine[0] and o.values[1] >= mine[1] and o.values != mine for o in result.trials)
    assert "front:" in result.explanation


@pytest.mark.e2e
def test_a_killed_search_resumes_where_it_stopped(prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets):
    from prefect.settings import PREFECT_API_URL

    config = write_config(
        tmp_path / "run.yaml",
        small_tickets,
        tiny_model,
        SEARCH.replace(
            "enqueue: [{learning_rate: 0.02}, {learning_rate: 0.03}, {learning_rate: 100.0}]", "enqueue: []"
        ),
    )
    storage = tmp_path / "runs" / "search" / "optuna.db"
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "MLFLOW_TRACKING_URI": mlflow_uri}
    # Its own training slot: the killed process's slot lease would otherwise hold up the resumed search until the
    # test server reclaims it (the slot's name is not part of the study, so the same study is resumed).
    command = [sys.executable, "-m", "tunesmith.flows.cli", "tune", str(config), "--trials", "3",
               "--set", "orchestration.training_slot=killed-search"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip

    def completed() -> int:
        """Finished trials, read without Optuna: its storage class creates missing tables, which would race the
        search creating them."""
        if not storage.is_file():
            return 0
        try:
            with sqlite3.connect(f"file:{storage}?mode=ro", uri=True) as db:
                return db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        except sqlite3.Error:  # tables not created yet
            return 0

    deadline = time.monotonic() + 600  # a shared machine is slower
    while completed() < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    assert process.poll() is None, "the search ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = completed()
    assert 1 <= first < 3

    result = tune_hyperparameters(str(config), ["training.search.trials=3"])
    assert len(result.trials) == 3  # the trials finished before the kill count; only the rest ran
    assert {t.state for t in result.trials} <= {"complete", "pruned"}
    study = optuna.load_study(study_name=result.study, storage=result.storage)
    left_running = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(study.trials) == 3 + len(left_running)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials[:first]) == first  # kept, not rerun
    for stopped in left_running:  # ran again, with the same settings
        assert any(t.params == stopped.params for t in study.trials[stopped.number + 1 :])
