import json

import pytest

from tasks.config.schema import BenchmarkConfig
from tasks.forgetting.benchmarks import run_benchmarks
from tasks.forgetting.compare import compare_scores
from tasks.models.hardware import Precision
from tasks.models.load import load_model
from tests.conftest import REPO, SHARED_DATA

CPU32 = Precision("cpu", "float32", "tests")


def test_relative_drop_over_threshold_is_flagged_with_mitigations():
    before = {"gk": {"acc": 0.60, "n": 100}, "arc": {"acc": 0.50, "n": 100}}
    after = {"gk": {"acc": 0.55, "n": 100}, "arc": {"acc": 0.49, "n": 100}}
    report = compare_scores(before, after, threshold=0.05)
    assert report.flagged == ["gk"]  # -8.3% relative; arc is -2%
    assert report.per_benchmark["gk"]["relative_change"] == pytest.approx(-0.05 / 0.60)
    assert report.per_benchmark["arc"]["absolute_change"] == pytest.approx(-0.01)
    assert any("replay" in r for r in report.recommendations)


def test_stable_or_better_model_is_not_flagged():
    before = {"gk": {"acc": 0.60, "n": 100}}
    report = compare_scores(before, {"gk": {"acc": 0.61, "n": 100}}, threshold=0.05)
    assert not report.forgetting and report.recommendations == []


def test_bundled_benchmark_runs_through_lm_eval(tmp_path, tiny_model):
    benchmark = BenchmarkConfig(name="general_knowledge", path=REPO / "data" / "general_knowledge.jsonl")
    scores = run_benchmarks(*load_model(str(tiny_model), CPU32), [benchmark], tmp_path, limit=20, batch_size=8)
    assert scores["general_knowledge"]["n"] == 20
    assert 0.0 <= scores["general_knowledge"]["acc"] <= 1.0
    again = run_benchmarks(*load_model(str(tiny_model), CPU32), [benchmark], tmp_path, limit=20, batch_size=8)
    assert again == scores


@pytest.mark.skipif(not (SHARED_DATA / "general_mc").is_dir(), reason="../shared/data/general_mc is not present")
def test_shared_general_knowledge_subsets_run_through_lm_eval(tmp_path, tiny_model):
    names = ["arc-easy", "mmlu-global-facts"]
    benchmarks = [
        BenchmarkConfig(name=n.replace("-", "_"), path=SHARED_DATA / "general_mc" / f"{n}.jsonl") for n in names
    ]
    scores = run_benchmarks(*load_model(str(tiny_model), CPU32), benchmarks, tmp_path, limit=10, batch_size=8)
    assert set(scores) == {"arc_easy", "mmlu_global_facts"}
    assert all(s["n"] == 10 for s in scores.values())
    first = json.loads((SHARED_DATA / "general_mc" / "arc-easy.jsonl").read_text().splitlines()[0])
    assert {"question", "choices", "answer"} <= set(first)
