"""The whole flow, for real: Prefect flow runs, MLflow (a server for the shared promoted run, SQLite stores for the
others), GX, TRL training and lm-eval, on a tiny model."""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import LABELS, TRAIN_FAST, TRAIN_TO_BEAT_BASE, ticket_rows, write_config, write_jsonl
from tunesmith.curation.curate import CurationFailed
from tunesmith.flows.pipeline import finetune_pipeline
from tunesmith.serving.predict import Predictor, read_requests


def _runs(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return client, parents, {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}


def _children(client: MlflowClient, parent_id: str) -> dict:
    parent = client.get_run(parent_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return {r.info.run_name: r for r in runs}


VERDICTS = {"forgetting", "no forgetting", "inconclusive"}


@pytest.mark.e2e
def test_pipeline_runs_every_stage_and_logs_them_nested_in_mlflow(shared_runs, tmp_path):
    """The shared run: the learnable tickets, TRAIN_TO_BEAT_BASE, judge on, loss logged every 3 steps."""
    result = shared_runs.pipeline
    assert result.decision == "finetune"
    client = MlflowClient(shared_runs.uri)
    parent = client.get_run(result.run_id)
    children = _children(client, result.run_id)
    assert "mlflow.parentRunId" not in parent.data.tags
    assert parent.info.status == "FINISHED"
    assert parent.data.params["training.logging_steps"] == "3"  # the resolved config, override included
    assert set(children) == {
        "fingerprint",
        "curation",
        "decision",
        "forgetting-baseline",
        "training",
        "evaluation",
        "forgetting",
        "promotion",
        "report",
    }

    def artifacts(run):
        return {a.path for a in client.list_artifacts(run.info.run_id)}

    assert {"resolved_config.yaml", "summary.md"} <= artifacts(parent)
    assert {
        "split_stats.json",
        "gx_validation.json",
        "rejects.jsonl",
        "curation_report.md",
        "curation_report.json",
        "dedup_clusters.json",
        "conflicts.json",
        "gx_data_docs",
    } <= artifacts(children["curation"])
    assert "decision_record.json" in artifacts(children["decision"])
    assert {"loss_curve.png", "loss_history.json"} <= artifacts(children["training"])
    assert {"test_predictions.json", "evaluation.json"} <= artifacts(children["evaluation"])
    assert "forgetting.json" in artifacts(children["forgetting"])

    assert children["curation"].data.metrics["read"] == 160
    assert 0 < children["training"].data.metrics["steps"] <= 150
    for key in ("base_accuracy", "finetuned_accuracy", "base_macro_f1", "finetuned_macro_f1"):
        assert 0.0 <= children["evaluation"].data.metrics[key] <= 1.0
        assert parent.data.metrics[key] == children["evaluation"].data.metrics[key]
    assert "arc_relative_change" in children["forgetting"].data.metrics  # the standard tier, the default
    assert len(client.get_metric_history(children["training"].info.run_id, "loss")) >= 2

    summary = Path(result.summary_path).read_text()
    for heading in ("## Curation", "## Decision", "## Training", "## Held-out evaluation", "## Forgetting"):
        assert heading in summary
    version = client.get_model_version("test-run", result.model_version["version"])
    assert version.tags["method"] == "lora" and version.tags["data_hash"] == parent.data.tags["tunesmith.data_hash"]
    assert version.source.startswith("models:/m-")  # an MLflow model, output of the training run
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == children["training"].info.run_id
    # The evaluation's metrics, on the model, measured on the test split
    assert ("accuracy", "test-run-test") in {(m.key, m.dataset_name) for m in logged.metrics}
    contexts = {i.dataset.name: [t.value for t in i.tags] for i in children["training"].inputs.dataset_inputs}
    assert contexts == {"test-run-train": ["training"], "test-run-validation": ["validation"]}
    assert {i.dataset.name for i in parent.inputs.dataset_inputs} >= {"test-run-curated", "test-run-test"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", shared_runs.uri)
        (reply,) = Predictor(f"models:/test-run/{version.version}").predict(
            list(read_requests(["my card was charged twice"]))
        )
    assert reply["adapter"] == "base" and isinstance(reply["output"], str)

    assert (
        result.outcome == "Promoted"
        and result.model_version["name"] == "test-run"
        and result.model_version["version"] == "1"
    )
    champion = client.get_model_version_by_alias("test-run", "champion")
    assert str(champion.version) == "1" and champion.tags["promotion"] == "Promoted"
    assert "base model with its best prompt" in champion.tags["promotion_reason"]
    # Both gates' answers, with their intervals, on the version, the parent run and the console's result rows
    assert champion.tags["task_change"].endswith("(95%)") and champion.tags["forgetting"] in VERDICTS
    assert parent.data.tags["tunesmith.forgetting"] == champion.tags["forgetting"] == result.forgetting_verdict
    assert "pooled_low" in children["forgetting"].data.metrics and "change_low" in children["promotion"].data.metrics
    assert result.task_gate.startswith("beats the base model with its best prompt")
    assert " points [" in result.task_gate and " points [" in result.forgetting
    assert {"confusion_base.png", "confusion_finetuned.png"} <= artifacts(children["evaluation"])
    assert {"next_data.md", "next_data.jsonl"} <= artifacts(children["evaluation"])  # what to collect next
    assert "finetuned_perplexity" in children["evaluation"].data.metrics
    assert 1 <= children["evaluation"].data.metrics["finetuned_judge_score"] <= 5
    assert "judge.json" in artifacts(children["evaluation"])
    assert "finetuned_precision_billing" in children["evaluation"].data.metrics

    record = client.download_artifacts(children["decision"].info.run_id, "decision_record.json", str(tmp_path))
    decision = json.loads(Path(record).read_text())
    assert decision["decision"] == "finetune" and decision["stop"] is False


@pytest.mark.e2e
def test_a_second_model_that_does_not_beat_the_champion_is_registered_but_not_promoted(
    shared_runs, prefect_server, tmp_path, tiny_model, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared_runs.uri)
    champion = shared_runs.pipeline.model_version["version"]
    config = write_config(tmp_path / "run.yaml", shared_runs.data, tiny_model, TRAIN_TO_BEAT_BASE)
    # Same data and seed as the promoted shared run, no training at all: it cannot beat the champion, so the gate
    # keeps the champion.
    second = finetune_pipeline(str(config), ["training.learning_rate=1e-12"], return_state=True)
    assert second.name == "Not promoted" and second.is_completed()
    assert second.message.startswith(("cannot be told from", "is below")), second.message
    assert f"the champion (version {champion}): accuracy" in second.message
    client = MlflowClient(shared_runs.uri)
    assert str(client.get_model_version_by_alias("test-run", "champion").version) == champion
    rejected = client.get_model_version("test-run", second.result().model_version["version"])
    assert rejected.tags["promotion"] == "Not promoted" and "champion" in rejected.tags["promotion_reason"]


def test_small_dataset_stops_after_the_decision(prefect_server, mlflow_uri, tmp_path, tiny_model):
    rows = [r for label in LABELS for r in [t for t in ticket_rows() if t["label"] == label][:8]]  # 32 tickets
    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "few.jsonl", rows), tiny_model, TRAIN_FAST)
    state = finetune_pipeline(str(config), return_state=True)
    assert state.name == "Stopped: few shot prompting recommended"
    result = state.result()
    assert result.decision == "few_shot_prompting"
    _, parents, children = _runs(mlflow_uri)
    assert set(children) == {"fingerprint", "curation", "decision", "report"}
    assert parents[0].data.tags["tunesmith.decision"] == "few_shot_prompting"


def test_failed_curation_fails_the_flow_and_marks_the_runs(prefect_server, mlflow_uri, tmp_path, tiny_model):
    rows = [{"text": f"ticket {i}", "label": "billing"} for i in range(20)] + [{"text": "?", "label": "spam"}] * 5
    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "bad.jsonl", rows), tiny_model, TRAIN_FAST)
    with pytest.raises(Exception, match="rows rejected"):
        finetune_pipeline(str(config))
    _, parents, children = _runs(mlflow_uri)
    assert parents[0].info.status == "FAILED"
    assert children["curation"].info.status == "FAILED"
    assert "rows rejected" in parents[0].data.tags["tunesmith.error"]


def test_failing_expectation_suite_stops_the_pipeline_before_training(
    prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets
):
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    with pytest.raises(CurationFailed, match="Great Expectations validation failed") as err:
        finetune_pipeline(str(config), ["data.min_tokens=1000"])  # only the suite checks the lower bound
    assert "expect_column_values_to_be_between on n_tokens" in str(err.value)
    _, parents, children = _runs(mlflow_uri)
    assert set(children) == {"fingerprint", "curation"} and children["curation"].info.status == "FAILED"
    assert parents[0].info.status == "FAILED"


ODD_LABELS = {"urgent": "reverted_card_payment?", "billing": "card/atm fee", "technical": "café crème",
              "general": "2fa reset"}  # fmt: skip


def test_labels_with_any_characters_run_through_and_are_logged_under_safe_keys(
    prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets
):
    rows = [json.loads(line) for line in small_tickets.read_text().splitlines()]
    data = write_jsonl(tmp_path / "odd.jsonl", [{"text": r["text"], "label": ODD_LABELS[r["label"]]} for r in rows])
    config = tmp_path / "odd.yaml"
    config.write_text(
        f"name: odd-labels\nmodel: {tiny_model}\noutput_dir: {tmp_path / 'runs'}\n"
        f"data:\n  path: {data}\n  labels: {json.dumps(list(ODD_LABELS.values()), ensure_ascii=False)}\n" + TRAIN_FAST,
        encoding="utf-8",
    )
    result = finetune_pipeline(str(config), ["forgetting.enabled=false"])

    assert result.decision == "finetune"
    client, _, children = _runs(mlflow_uri)
    evaluation = children["evaluation"]
    metrics = evaluation.data.metrics
    assert "finetuned_precision_reverted_card_payment_" in metrics and "base_recall_caf_ cr_me" in metrics
    assert "finetuned_recall_card/atm fee" in metrics and "finetuned_precision_2fa reset" in metrics
    run_id = evaluation.info.run_id
    names = {}
    for artifact in client.list_artifacts(run_id, "metric_names"):
        names |= json.loads(Path(client.download_artifacts(run_id, artifact.path, str(tmp_path))).read_text())
    assert names["finetuned_precision_reverted_card_payment_"] == "finetuned_precision_reverted_card_payment?"
    assert names["base_recall_caf_ cr_me"] == "base_recall_café crème"
    table = json.loads(Path(client.download_artifacts(run_id, "per_class.json", str(tmp_path))).read_text())
    labels = [row[table["columns"].index("label")] for row in table["data"]]
    assert labels == list(ODD_LABELS.values())


def test_metric_keys_keep_accepted_names_and_never_collide():
    from tunesmith.tracking.mlflow_runs import metric_keys

    keys = metric_keys(["recall_a?", "recall_a!", "recall_a_", "accuracy", "precision_ünï", "/x"])
    assert keys == {"recall_a?": "recall_a__2", "recall_a!": "recall_a__3", "recall_a_": "recall_a_",
                    "accuracy": "accuracy", "precision_ünï": "precision__n_", "/x": "x"}  # fmt: skip


def test_a_run_that_failed_after_training_reruns_without_training_again(
    prefect_server, mlflow_uri, tmp_path, tiny_model, small_tickets, monkeypatch
):
    """Evaluation fails once (an injected fault); the rerun of the same config reuses the finished training and
    the base model's benchmark scores, evaluates it, and the registry holds exactly one model version for it."""
    import tunesmith.tasks.evaluation as evaluation_task
    import tunesmith.training.stage as training_stage

    trainings = []
    real_train, real_evaluate = training_stage.train, evaluation_task.run_evaluation

    def counting_train(spec):
        trainings.append(spec.method)
        return real_train(spec)

    def failing_evaluate(*args, **kwargs):
        raise RuntimeError("injected evaluation fault")

    monkeypatch.setattr(training_stage, "train", counting_train)
    monkeypatch.setattr(evaluation_task, "run_evaluation", failing_evaluate)
    config = write_config(tmp_path / "run.yaml", small_tickets, tiny_model, TRAIN_FAST)
    with pytest.raises(RuntimeError, match="injected evaluation fault"):
        finetune_pipeline(str(config))
    assert len(trainings) == 1

    monkeypatch.setattr(evaluation_task, "run_evaluation", real_evaluate)
    state = finetune_pipeline(str(config), return_state=True)
    assert state.is_completed() and len(trainings) == 1  # the rerun did not train
    client = MlflowClient(mlflow_uri)
    versions = client.search_model_versions("name='test-run'")
    assert [str(v.version) for v in versions] == ["1"]
    _, parents, _ = _runs(mlflow_uri)
    rerun = max(parents, key=lambda r: r.info.start_time)
    training = client.search_runs(
        [rerun.info.experiment_id],
        f"tags.mlflow.parentRunId = '{rerun.info.run_id}' and tags.mlflow.runName = 'training'",
    )[0]
    assert training.data.tags["tunesmith.reused_training_of_run"] == versions[0].tags["pipeline_run_id"]
    baseline = client.search_runs(
        [rerun.info.experiment_id],
        f"tags.mlflow.parentRunId = '{rerun.info.run_id}' and tags.mlflow.runName = 'forgetting-baseline'",
    )[0]  # the base model was not scored again either
    assert baseline.data.tags["tunesmith.base_scores_from_run"] == versions[0].tags["pipeline_run_id"]
    assert {k: state.result().model_version[k] for k in ("name", "version")} == {"name": "test-run", "version": "1"}
    assert (Path(state.result().output_dir) / "training" / "model" / "adapter_config.json").is_file()
