import json

import pytest

from tests.conftest import REPO, SHARED_DATA
from tunesmith.config.schema import BenchmarkConfig
from tunesmith.forgetting.benchmarks import run_benchmarks
from tunesmith.forgetting.compare import compare_scores
from tunesmith.models.load import load_model
from tunesmith.records import Precision

CPU32 = Precision("cpu", "float32", "tests")


def test_without_a_hub_the_local_benchmarks_are_used(monkeypatch):
    from tunesmith.forgetting.benchmarks import choose_suite

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local = [BenchmarkConfig(name="general_knowledge", path=REPO / "data" / "general_knowledge.jsonl")]
    assert choose_suite("auto", local, ["arc_easy"]) == (
        local,
        [],
        "local benchmarks: the Hugging Face hub is not reachable",
    )
    assert choose_suite("harness", local, ["arc_easy"])[1] == ["arc_easy"]


def test_relative_drop_over_threshold_is_flagged_with_mitigations():
    before = {"gk": {"acc": 0.60, "n": 100}, "arc": {"acc": 0.50, "n": 100}}
    after = {"gk": {"acc": 0.55, "n": 100}, "arc": {"acc": 0.49, "n": 100}}
    report = compare_scores(before, after, threshold=0.05)
    assert report.flagged == ["gk"]  # -8.3% relative; arc is -2%
    assert report.per_benchmark["gk"]["relative_change"] == pytest.approx(-0.05 / 0.60)
    assert report.per_benchmark["arc"]["absolute_change"] == pytest.approx(-0.01)
    assert any("replay" in r for r in report.recommendations)


def test_mcnemar_compares_the_same_questions_before_and_after():
    from tunesmith.forgetting.compare import mcnemar_p

    before = [True] * 60 + [False] * 40
    lost_many = [False] * 20 + [True] * 40 + [False] * 40  # 20 lost, none gained
    assert mcnemar_p(before, lost_many) < 1e-5
    swapped = [False] * 5 + [True] * 55 + [True] * 5 + [False] * 35  # 5 lost, 5 gained
    assert mcnemar_p(before, swapped) == 1.0


def test_significance_can_be_required_before_flagging():
    before = {"gk": {"acc": 0.60, "n": 100, "correct": [True] * 60 + [False] * 40}}
    noisy = {"gk": {"acc": 0.56, "n": 100, "correct": [False] * 6 + [True] * 54 + [True] * 2 + [False] * 38}}
    loose = compare_scores(before, noisy, threshold=0.05)
    strict = compare_scores(before, noisy, threshold=0.05, require_significance=True)
    assert loose.flagged == ["gk"] and strict.flagged == []
    assert loose.per_benchmark["gk"]["p_value"] > 0.05 and "not significant" in strict.notes[0]
    real_drop = {"gk": {"acc": 0.40, "n": 100, "correct": [False] * 20 + [True] * 40 + [False] * 40}}
    assert compare_scores(before, real_drop, threshold=0.05, require_significance=True).flagged == ["gk"]


def test_stable_or_better_model_is_not_flagged():
    before = {"gk": {"acc": 0.60, "n": 100}}
    report = compare_scores(before, {"gk": {"acc": 0.61, "n": 100}}, threshold=0.05)
    assert not report.forgetting and report.recommendations == []


def test_bundled_benchmark_runs_through_lm_eval(tmp_path, tiny_model):
    benchmark = BenchmarkConfig(name="general_knowledge", path=REPO / "data" / "general_knowledge.jsonl")
    scores = run_benchmarks(*load_model(str(tiny_model), CPU32), [benchmark], tmp_path, limit=20, batch_size=8)
    assert scores["general_knowledge"]["n"] == 20 == len(scores["general_knowledge"]["correct"])
    assert scores["general_knowledge"]["acc"] == pytest.approx(sum(scores["general_knowledge"]["correct"]) / 20)
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
