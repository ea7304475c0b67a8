"""The learning-curve fit: predictions with intervals from nested subsets, plateaus and the data a target needs."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tunesmith.evaluation.learning_curve import fit_learning_curve


def _scores(sizes, accuracy, n_test=400, seed=0) -> list[list[float]]:
    """Each test example right once the model is good enough for it: a fixed difficulty per example, so the points
    of one curve move together as real nested subsets do."""
    difficulty = np.random.default_rng(seed).random(n_test)
    return [list((difficulty < accuracy(n)).astype(float)) for n in sizes]


def test_three_points_predict_the_fourth_within_their_interval():
    def truth(n):
        return 0.9 - 1.5 * n**-0.5

    sizes = [100, 200, 400, 800]
    scores = _scores(sizes, truth)
    curve = fit_learning_curve(sizes[:3], scores[:3], target=0.85)
    measured = float(np.mean(scores[3]))
    estimate, low, high = curve.at_2x
    assert low <= measured <= high and abs(estimate - measured) < 0.03  # 400 test examples: about +-2.4 points
    assert not curve.plateaued and curve.gain_2x[1] > 0
    need, need_low, need_high = curve.needed_for_target
    assert need_low <= (1.5 / 0.05) ** 2 <= need_high  # 900 examples reach 0.85 on the true curve
    assert curve.resamples > 400


def test_a_flat_curve_is_called_a_plateau_and_an_unreachable_target_says_so():
    sizes = [100, 200, 400, 800]
    scores = _scores(sizes, lambda n: 0.7)
    curve = fit_learning_curve(sizes, scores, target=0.95)
    assert curve.plateaued and curve.gain_2x[2] < 0.01
    assert math.isinf(curve.needed_for_target[0])


def test_too_few_points_give_no_curve():
    assert fit_learning_curve([100, 200], _scores([100, 200], lambda n: 0.5)) is None


@pytest.mark.parametrize("ceiling", [1.0])
def test_the_curve_never_saturates_above_what_a_proportion_can_reach(ceiling):
    sizes = [50, 100, 200]
    curve = fit_learning_curve(sizes, _scores(sizes, lambda n: min(0.99, 0.5 + n / 250)), ceiling=ceiling)
    assert curve.a <= ceiling and curve.at_4x[2] <= ceiling + 1e-9


def test_nested_subsets_keep_the_mix_and_contain_each_other():
    from tunesmith.evaluation.learning_curve import nested_subsets

    groups = ["a"] * 80 + ["b"] * 16 + ["c"] * 8
    subsets = nested_subsets(groups, [0.125, 0.25, 0.5, 1.0])
    assert [len(s) for s in subsets] == [10 + 2 + 1, 20 + 4 + 2, 40 + 8 + 4, 104]
    assert all(set(small) <= set(large) for small, large in zip(subsets[:-1], subsets[1:], strict=True))
    assert {groups[i] for i in subsets[0]} == {"a", "b", "c"}  # every label from the smallest subset on


def test_the_curve_plot_is_written(tmp_path):
    from tunesmith.evaluation.learning_curve import plot_curve

    sizes = [100, 200, 400]
    curve = fit_learning_curve(sizes, _scores(sizes, lambda n: 0.9 - 1.5 * n**-0.5), target=0.85, resamples=50)
    assert plot_curve(curve, tmp_path / "curve.png").stat().st_size > 1000


def test_a_curve_trains_nested_subsets_scores_them_on_one_test_set_and_reports(tmp_path, tiny_model, learnable_tickets):
    from tests.conftest import write_config
    from tests.test_training import CPU32
    from tunesmith.config import load_config
    from tunesmith.curation.curate import curate
    from tunesmith.evaluation.curve_points import fit_points, measure_point, subsets_for, write_curve
    from tunesmith.models.load import load_tokenizer
    from tunesmith.prompts import training_prompt
    from tunesmith.records import PreparedModel

    extra = "training:\n  epochs: 3\n  learning_rate: 0.01\n  batch_size: 8\nevaluation:\n  max_examples: 16\n"
    config = load_config(write_config(tmp_path / "config.yaml", learnable_tickets, tiny_model, extra))
    data = curate(config.data, load_tokenizer(str(tiny_model)), training_prompt(config), None, tmp_path / "curated")
    subsets = subsets_for(data, [0.25, 0.5, 1.0])
    model = PreparedModel(str(tiny_model), CPU32)
    points = [measure_point(config, data, model, "lora", f, indices, tmp_path / f"point-{f}")
              for f, indices in subsets.items()]  # fmt: skip
    assert [p.examples for p in points] == [len(s) for s in subsets.values()]
    assert points[-1].examples == data.counts["train"]
    assert len({len(p.per_example) for p in points}) == 1 and all(0 <= p.score <= 1 for p in points)
    report = write_curve(points, fit_points(points, target=0.9), "accuracy", tmp_path / "curve")
    text = (tmp_path / "curve" / "curve.md").read_text()
    assert f"| {points[0].examples} | 25.0% |" in text and len(report["points"]) == 3
    assert ("at " in text and (tmp_path / "curve" / "curve.png").is_file()) or "no prediction" in text


def test_tunesmith_curve_runs_the_flow_and_logs_the_curve(prefect_server, mlflow_uri, tmp_path, tiny_model,
                                                         learnable_tickets):  # fmt: skip
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from tests.conftest import write_config
    from tunesmith.flows.cli import app

    extra = (
        "training:\n  epochs: 2\n  learning_rate: 0.01\n  batch_size: 8\nevaluation:\n  max_examples: 16\n"
        "  learning_curve:\n    confident_within: null\n"
    )  # every share, whatever the fit knows
    config = write_config(tmp_path / "run.yaml", learnable_tickets, tiny_model, extra)
    result = CliRunner().invoke(app, ["curve", str(config)])
    assert result.exit_code == 0, result.output
    for line in ("curve-12.5pct", "curve-100.0pct", "learning curve", "| examples | share | test score |"):
        assert line in result.output
    client = MlflowClient(mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (parent,) = client.search_runs(experiments, "tags.`tunesmith.kind` = 'curve'")
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    points = [c for c in children if c.data.tags.get("tunesmith.stage", "").startswith("curve-")]
    assert len(points) == 4 and all("test_score" in c.data.metrics for c in points)
    assert "curve.md" in {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(parent.info.run_id, "curve")}


def test_the_report_checks_the_curve_on_its_largest_point(tmp_path):
    from tunesmith.evaluation.curve_points import CurvePoint, check_prediction, write_curve

    sizes = [125, 250, 500, 1000]
    scores = _scores(sizes, lambda n: 0.9 - 1.5 * n**-0.5)
    points = [CurvePoint(n / 1000, n, float(np.mean(s)), s, 1.0, "") for n, s in zip(sizes, scores, strict=True)]
    check = check_prediction(points)
    assert check["examples"] == 1000 and check["inside"] == 1.0 and check["low"] < check["predicted"] < check["high"]
    write_curve(points, None, "accuracy", tmp_path)
    assert "Check: fitted without the largest point" in (tmp_path / "curve.md").read_text()


def test_the_cheap_shares_come_first_and_a_confident_fit_stops_before_the_rest(tmp_path):
    from tunesmith.evaluation.curve_points import CurvePoint, confident, schedule, write_curve

    assert schedule([1.0, 0.5, 0.25, 0.125]) == [0.125, 0.25, 1.0, 0.5]
    assert schedule([0.1, 0.2, 0.4, 0.6, 1.0]) == [0.1, 0.2, 1.0, 0.6, 0.4]

    def points(test_examples: int) -> list[CurvePoint]:
        sizes = [125, 250, 1000]
        scores = _scores(sizes, lambda n: 0.9 - 1.5 * n**-0.5, test_examples)
        return [CurvePoint(n / 1000, n, float(np.mean(s)), s, 1.0, "") for n, s in zip(sizes, scores, strict=True)]

    # 20,000 test examples pin the mean at each size to about +-0.3 points, so the 2x prediction is tight; with 40
    # the same curve's points each move by about 6 points and the extrapolation cannot be known to 2 points.
    assert confident(points(20000), 0.02) and not confident(points(40), 0.02)
    assert not confident(points(20000), None) and not confident(points(20000)[:2], 0.02)
    write_curve(points(20000), None, "accuracy", tmp_path, skipped=[0.5])
    assert "Not trained: 50.0% of the training split" in (tmp_path / "curve.md").read_text()


def test_the_learning_curve_switch_takes_a_bare_boolean_and_checks_its_shares(tmp_path):
    from pydantic import ValidationError

    from tunesmith.config.schema import EvaluationConfig

    assert EvaluationConfig(learning_curve=True).learning_curve.enabled
    assert EvaluationConfig(learning_curve={"fractions": [1.0, 0.2, 0.1]}).learning_curve.fractions == [0.1, 0.2, 1.0]
    with pytest.raises(ValidationError, match="include 1.0"):
        EvaluationConfig(learning_curve={"fractions": [0.1, 0.2, 0.5]})


def test_a_run_with_the_learning_curve_on_adds_the_smaller_shares_to_its_own_training(
    prefect_server, mlflow_uri, tmp_path, tiny_model, learnable_tickets
):
    from mlflow.tracking import MlflowClient

    from tests.conftest import TRAIN_FAST, write_config
    from tunesmith.flows.pipeline import finetune_pipeline

    config = write_config(tmp_path / "run.yaml", learnable_tickets, tiny_model, TRAIN_FAST)
    curve = ["evaluation.learning_curve.enabled=true", "evaluation.learning_curve.confident_within=null",
             "forgetting.enabled=false", "evaluation.max_examples=16"]  # fmt: skip
    result = finetune_pipeline(str(config), curve)
    summary = Path(result.summary_path).read_text()
    assert "## Learning curve (accuracy)" in summary and "| examples | share | test score |" in summary
    client = MlflowClient(mlflow_uri)
    children = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    stages = {c.data.tags["tunesmith.stage"] for c in children}
    # the run's own training is the whole split's point: only the smaller shares train again
    assert {"curve-12.5pct", "curve-25.0pct", "curve-50.0pct", "training"} <= stages
    assert "curve-100.0pct" not in stages
    assert "curve.json" in {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(result.run_id, "curve")}
    report = json.loads(Path(result.output_dir, "curve", "curve.json").read_text())
    assert [p["fraction"] for p in report["points"]] == [0.125, 0.25, 0.5, 1.0]
    assert report["points"][-1]["score"] == pytest.approx(result.metrics["finetuned_accuracy"])  # the run's own
