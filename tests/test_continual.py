"""Continual retraining from the champion: kept splits, new examples plus a replay sample of old ones, and the old
task in the forgetting gate."""

import json
from pathlib import Path

import pytest

from tests.conftest import TRAIN_FAST, learnable_rows, write_config, write_jsonl
from tunesmith.curation.records import read_examples, write_examples
from tunesmith.errors import DataError
from tunesmith.records import OLD_TASK, Example, ForgettingReport
from tunesmith.retraining.continual import (
    Champion,
    continual_train,
    old_task_row,
    with_old_task,
)


def _examples(prefix: str, labels: dict[str, int]) -> list[Example]:
    return [
        Example(f"{prefix}-{label}-{i}", [{"role": "user", "content": f"{prefix} {i}"},
                                          {"role": "assistant", "content": label}], "rows.jsonl", label=label)
        for label, n in labels.items() for i in range(n)
    ]  # fmt: skip


def _champion(tmp_path: Path, train: list[Example]) -> Champion:
    folder = tmp_path / "champion" / "data"
    for split, rows in (("train", train), ("validation", []), ("test", [])):
        write_examples(rows, folder / f"{split}.jsonl")
    return Champion("tickets", "1", "lora", str(tmp_path / "model"), str(folder), "tiny", {})


def _curated(tmp_path: Path, train: list[Example]):
    from tunesmith.records import CuratedData

    path = write_examples(train, tmp_path / "curated" / "train.jsonl")
    return CuratedData("classification", "classification", ["a", "b"], str(path), "", "", "", "", "h",
                       {"train": len(train)}, {}, {}, {}, {})  # fmt: skip


def test_a_continued_training_takes_every_new_example_and_a_stratified_replay_of_the_old(tmp_path):
    old = _examples("old", {"a": 60, "b": 20})
    new = _examples("new", {"a": 10, "b": 10})
    data = _curated(tmp_path, old + new)
    continued, counts = continual_train(data, _champion(tmp_path, old), 0.5, 0, tmp_path / "out")
    trained_on = read_examples(Path(continued.train_path))
    assert counts == {"new": 20, "general": 0, "replayed": 20, "not_replayed": 60} and continued.counts["train"] == 40
    assert {e.id for e in new} <= {e.id for e in trained_on}
    replayed = [e for e in trained_on if e.id.startswith("old")]
    assert sum(e.group == "a" for e in replayed) == 15  # the old split's 3:1 mix of labels, kept
    # a replay share of 0.8 asks for four old examples per new one: 80, all the old split holds
    _, most = continual_train(data, _champion(tmp_path, old), 0.8, 0, tmp_path / "out2")
    assert most == {"new": 20, "general": 0, "replayed": 80, "not_replayed": 0}


def test_nothing_new_to_continue_on_is_refused_with_what_to_do(tmp_path):
    old = _examples("old", {"a": 5, "b": 5})
    with pytest.raises(DataError, match="retraining.start_from: base"):
        continual_train(_curated(tmp_path, old), _champion(tmp_path, old), 0.5, 0, tmp_path / "out")


def _report(verdict: str) -> ForgettingReport:
    pooled = {"n": 1000, "before": 0.5, "after": 0.5, "difference": 0.0, "low": -0.01, "high": 0.01,
              "confidence": 0.95, "margin": 0.025, "detectable_drop": 0.02}  # fmt: skip
    return ForgettingReport(0.05, {}, {}, pooled, verdict, verdict)


@pytest.mark.parametrize(
    ("champion_right", "new_right", "n", "general", "expected"),
    [
        (0.9, 0.6, 400, "no forgetting", "forgetting"),  # 30 points down on 400 examples: the old task forgot
        (0.9, 0.9, 2000, "no forgetting", "no forgetting"),  # the same answers on 2,000: cleared
        (0.9, 0.85, 40, "no forgetting", "inconclusive"),  # 40 examples cannot tell 5 points from noise
        (0.9, 0.9, 2000, "forgetting", "forgetting"),  # the general suite still decides its part
    ],
)
def test_the_old_task_joins_the_forgetting_verdict(tmp_path, champion_right, new_right, n, general, expected):
    champion_scores = [float(i < champion_right * n) for i in range(n)]
    new_scores = [float(i < new_right * n) for i in range(n)]
    row = old_task_row("classification", champion_scores, new_scores, threshold=0.05)
    report = with_old_task(_report(general), row, _champion(tmp_path, []))
    assert report.verdict == expected and OLD_TASK in report.per_benchmark
    assert report.per_benchmark[OLD_TASK]["before"] == pytest.approx(champion_right, abs=1e-9)
    assert any("champion's (tickets version 1) test split" in note for note in report.notes)
    assert f"old task (the champion's test split, {n} examples)" in report.headline()
    margin = report.per_benchmark[OLD_TASK]["margin"]
    assert f"threshold -{100 * margin:.1f} points: {report.verdicts[OLD_TASK]}" in report.headline()
    assert "dropped: old_task" not in report.headline()  # named once, in its own clause


@pytest.mark.parametrize("general", ["no forgetting", "forgetting"])
def test_a_forgotten_old_task_is_retrained_with_more_of_the_champions_examples(tmp_path, tiny_model, general):
    from tunesmith.config import load_config
    from tunesmith.forgetting.mitigation import continued, plan_attempts

    scores = ([1.0] * 360 + [0.0] * 40, [1.0] * 240 + [0.0] * 160)  # 0.9 -> 0.6 on 400 examples: forgotten
    row = old_task_row("classification", *scores, threshold=0.05)
    report = with_old_task(_report(general), row, _champion(tmp_path, []))
    was = continued(report, champion_replay=0.2)
    replay, pull = plan_attempts(["replay", "l2_to_base"], 2, 0.1, 1e-3, 100, continued=was)
    # twice as many of the champion's examples per new one: 0.2 / 0.8 = 1 in 4, then 0.33 / 0.67 = 1 in 2
    assert "retraining.replay_fraction=0.33" in replay.data and "of the champion's examples" in replay.why
    # the general data is replayed more only when the general suite dropped too
    assert ("data.replay.fraction=0.2" in replay.data) == (general == "forgetting")
    assert "L2 toward the champion" in pull.why and pull.data == replay.data
    config = write_config(tmp_path / "run.yaml", tmp_path / "rows.jsonl", tiny_model)
    write_jsonl(tmp_path / "rows.jsonl", learnable_rows()[:8])
    assert load_config(config, list(replay.data)).retraining.replay_fraction == pytest.approx(0.33)


def test_curation_keeps_pinned_examples_in_their_split(tmp_path, tiny_model, small_tickets):
    from tunesmith.config.schema import DataConfig
    from tunesmith.curation.curate import curate
    from tunesmith.models.load import load_tokenizer

    config = DataConfig(path=small_tickets, format="classification", labels=["urgent", "billing", "technical",
                                                                              "general"])  # fmt: skip
    tokenizer = load_tokenizer(str(tiny_model))
    first = curate(config, tokenizer, "", None, tmp_path / "first")
    test_ids = [e.id for e in read_examples(Path(first.test_path))]
    train_ids = [e.id for e in read_examples(Path(first.train_path)) if e.origin == "task"]  # not general replay
    # the earlier test examples are pinned to train and some training examples to test: both moves are kept
    pinned = {i: "train" for i in test_ids} | {i: "test" for i in train_ids[:10]}
    second = curate(config, tokenizer, "", None, tmp_path / "second", pinned=pinned)
    assert set(train_ids[:10]) <= {e.id for e in read_examples(Path(second.test_path))}
    # pinned to train: there, unless the leakage check removed it as a near copy of a held-out example
    leaked = {json.loads(line)["source"] for line in Path(second.rejects_path).read_text().splitlines()
              if json.loads(line)["kind"] == "leakage"}  # fmt: skip
    in_train = {e.id for e in read_examples(Path(second.train_path))}
    by_id = {e.id: e.source for e in read_examples(Path(first.test_path))}
    assert all(i in in_train or by_id[i] in leaked for i in test_ids)
    assert second.counts["kept_in_earlier_split"] == len(pinned)
    kept = second.counts["train_from_input"] + second.counts["validation"] + second.counts["test"]
    assert kept + second.counts["leakage_removed"] == first.counts["kept_unique"]  # every example, once


def test_a_retraining_continues_the_champion_on_new_data_and_checks_its_old_task(
    prefect_server, mlflow_uri, tmp_path, tiny_model, monkeypatch
):
    from mlflow.tracking import MlflowClient

    from tunesmith.flows.pipeline import finetune_pipeline

    rows = learnable_rows()
    extra = TRAIN_FAST + "decision:\n  force: finetune\nretraining:\n  start_from: champion\n"
    first_config = write_config(tmp_path / "first.yaml", write_jsonl(tmp_path / "first.jsonl", rows[:120]),
                                tiny_model, extra)  # fmt: skip
    first = finetune_pipeline(str(first_config))
    client = MlflowClient(mlflow_uri)
    name, version = first.model_version["name"], first.model_version["version"]
    if (
        first.outcome != "Promoted"
    ):  # a 12-step model rarely beats the base on 12 test tickets; the alias is what counts
        client.set_registered_model_alias(name, "champion", version)

    second_config = write_config(tmp_path / "second.yaml", write_jsonl(tmp_path / "all.jsonl", rows), tiny_model,
                                 extra)  # fmt: skip
    # as a scheduled run in a fresh process: only the config names the store, and MLflow's process-wide URI
    # (which resolves models:/ URIs unless told otherwise) points elsewhere
    import mlflow.tracking._tracking_service.utils as tracking_state

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(tracking_state, "_tracking_uri", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    second = finetune_pipeline(str(second_config), [f"tracking.tracking_uri={mlflow_uri}"])
    children = client.search_runs([second.experiment_id], f"tags.mlflow.parentRunId = '{second.run_id}'")
    by_stage = {c.data.tags["tunesmith.stage"]: c for c in children}
    assert by_stage["champion"].data.params["champion"] == f"{name} version {version}"
    training = by_stage["training"].data.params
    assert training["start_from"] == f"{name} version {version}"
    new, replayed = int(training["continual_new"]), int(training["continual_replayed"])
    # the 40 added tickets, less those curation put in validation or test; as many old ones, give or take a
    # rounding per label (4 labels)
    assert 20 <= new <= 40 and abs(replayed - new) <= 4
    champion_data = tmp_path / "runs" / "cache" / "champions" / f"{name}-{version}" / "data"
    curated = Path(by_stage["curation"].data.params["curated_dir"])
    old_test = {e.id for e in read_examples(champion_data / "test.jsonl")}
    assert old_test and old_test <= {e.id for e in read_examples(curated / "test.jsonl")}  # its test stays test
    old_train = {e.id for e in read_examples(champion_data / "train.jsonl")}
    assert not old_train & {e.id for e in read_examples(curated / "test.jsonl")}
    report = json.loads(Path(client.download_artifacts(by_stage["forgetting"].info.run_id, "forgetting.json",
                                                       str(tmp_path))).read_text())  # fmt: skip
    assert report["per_benchmark"][OLD_TASK]["n"] == len(old_test)
    assert report["verdicts"][OLD_TASK] in ("forgetting", "no forgetting", "inconclusive")
