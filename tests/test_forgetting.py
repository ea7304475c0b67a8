import json

import pytest

from tests.conftest import REPO, SHARED_DATA, write_config, write_jsonl
from tunesmith.config.schema import BenchmarkConfig
from tunesmith.forgetting.benchmarks import in_process_lm, run_benchmarks
from tunesmith.forgetting.compare import compare_scores
from tunesmith.models.load import load_model
from tunesmith.records import Precision

CPU32 = Precision("cpu", "float32", "tests")


def hf_lm(model_path, batch_size=16):
    return in_process_lm(*load_model(str(model_path), CPU32), batch_size)


def test_the_tier_picks_the_suite_for_the_device(monkeypatch):
    from tunesmith.config.schema import STANDARD_TIER, ForgettingConfig
    from tunesmith.forgetting.benchmarks import choose_suite, lm_eval_batch_size

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    smoke, _, why = choose_suite(ForgettingConfig(tier="smoke"), "cpu")
    assert [b.name for b in smoke] == ["general_knowledge"] and why.startswith("smoke")
    for device in ("cpu", "cuda"):  # the default on every device: enough questions to come near the threshold
        standard, harness, _ = choose_suite(ForgettingConfig(), device)
        assert [b.name for b in standard] == list(STANDARD_TIER) and harness == []
    assert all(b.path.is_file() for b in standard)  # bundled with the package
    full, harness, why = choose_suite(ForgettingConfig(tier="full"), "cuda")
    assert [b.name for b in full] == list(STANDARD_TIER) and "hub is not reachable" in why
    own = [BenchmarkConfig(name="mine", path=REPO / "data" / "general_knowledge.jsonl")]
    assert choose_suite(ForgettingConfig(tier="standard", benchmarks=own), "cpu")[0] == own
    assert not ForgettingConfig(benchmarks=[]).active
    assert (
        lm_eval_batch_size(ForgettingConfig(), "cpu") == 16 and lm_eval_batch_size(ForgettingConfig(), "cuda") == "auto"
    )
    assert lm_eval_batch_size(ForgettingConfig(batch_size=4), "cuda") == 4
    with pytest.raises(ValueError):
        ForgettingConfig(batch_size=0)


def test_the_standard_tier_files_run_through_lm_eval(tmp_path, tiny_model):
    from tunesmith.config.schema import tier_benchmarks

    scores = run_benchmarks(hf_lm(tiny_model), tier_benchmarks("standard"), tmp_path, limit=3)
    assert {name: s["n"] for name, s in scores.items()} == {b.name: 3 for b in tier_benchmarks("standard")}
    for benchmark in tier_benchmarks("standard"):
        rows = [json.loads(line) for line in benchmark.path.read_text().splitlines()]
        assert len(rows) >= 200 and all(0 <= r["answer"] < len(r["choices"]) for r in rows)


def test_the_base_model_is_scored_once_per_model_suite_and_settings(tmp_path, tiny_model):
    """The second baseline with the same inputs reuses the first one's scores without loading the model; a changed
    benchmark file, limit or model, or the cache switched off, scores again."""
    import shutil

    from tunesmith.config import load_config
    from tunesmith.forgetting.stage import Scorable, run_forgetting_baseline
    from tunesmith.records import PreparedModel

    questions = tmp_path / "questions.jsonl"
    shutil.copy(REPO / "data" / "general_knowledge.jsonl", questions)
    extra = f"forgetting:\n  limit: 8\n  benchmarks: [{{name: gk, path: {questions}}}]\n"
    config_file = write_config(tmp_path / "run.yaml", REPO / "data" / "tickets.jsonl", tiny_model, extra)
    loads = []

    def baseline(run_id, overrides=(), model=tiny_model):
        def load():
            loads.append(run_id)
            return load_model(str(model), CPU32)

        config = load_config(config_file, list(overrides))
        prepared = PreparedModel(str(model), CPU32)
        base = Scorable(load, lambda: None, str(model), CPU32)
        return run_forgetting_baseline(config, prepared, base, tmp_path / run_id, run_id)

    first = baseline("run-1")
    assert first["cached_from"] is None and first["scores"]["gk"]["n"] == 8
    second = baseline("run-2")
    assert second["cached_from"] == "run-1" and second["scores"] == first["scores"] and loads == ["run-1"]
    baseline("run-3", ["forgetting.limit=6"])
    baseline("run-4", ["orchestration.cache=false"])
    with questions.open("a") as f:
        f.write(json.dumps({"question": "Which is a colour?", "choices": ["red", "seven"], "answer": 0}) + "\n")
    baseline("run-5")
    other = shutil.copytree(tiny_model, tmp_path / "other-model")
    (other / "config.json").write_text((other / "config.json").read_text().replace("}", ', "note": 1}', 1))
    baseline("run-6", model=other)
    assert loads == ["run-1", "run-3", "run-4", "run-5", "run-6"]


def test_a_hugging_face_blob_is_named_by_its_hash_and_other_files_are_hashed_once(tmp_path):
    import hashlib

    from tunesmith.forgetting.base_scores import file_hash

    content = b"weights"
    blob = tmp_path / "blobs" / hashlib.sha256(b"any").hexdigest()
    blob.parent.mkdir()
    blob.write_bytes(content)
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    assert file_hash(link, {}) == blob.name  # the hub's own content address, not read again
    plain = tmp_path / "plain.bin"
    plain.write_bytes(content)
    memo: dict[str, str] = {}
    assert file_hash(plain, memo) == hashlib.sha256(content).hexdigest() and len(memo) == 1
    memo[next(iter(memo))] = "remembered"
    assert file_hash(plain, memo) == "remembered"  # same path, size and mtime: not read again


def scores(right: int, wrong: int, lost: int = 0, gained: int = 0) -> tuple[dict, dict]:
    """Right/wrong outcomes of one benchmark before and after: `lost` of the right answers go wrong, `gained` of the
    wrong ones go right."""
    before = [True] * right + [False] * wrong
    after = [i >= lost for i in range(right)] + [i < gained for i in range(wrong)]
    return ({"acc": sum(before) / len(before), "n": len(before), "correct": before},
            {"acc": sum(after) / len(after), "n": len(after), "correct": after})  # fmt: skip


def test_a_significant_drop_beyond_the_threshold_is_forgetting_with_mitigations():
    gk, arc = scores(600, 400, lost=80), scores(500, 500, lost=5, gained=5)
    report = compare_scores({"gk": gk[0], "arc": arc[0]}, {"gk": gk[1], "arc": arc[1]}, threshold=0.05)
    assert report.verdict == "forgetting" and report.flagged == ["gk"]
    assert report.verdicts == {"gk": "forgetting", "arc": "no forgetting"}
    assert report.per_benchmark["gk"]["relative_change"] == pytest.approx(-0.08 / 0.60)
    assert report.per_benchmark["gk"]["margin"] == pytest.approx(0.05 * 0.60)
    assert report.per_benchmark["gk"]["high"] < 0 and report.pooled["n"] == 2000
    assert any("replay" in r for r in report.recommendations)
    assert report.headline().startswith("forgetting: 2000 questions") and "dropped: gk -8.0 points" in report.headline()


def test_a_drop_the_questions_cannot_resolve_is_inconclusive_not_forgetting():
    # Like the demo's first verdict: 8 of 109 answers changed, -3.7 points, McNemar p = 0.29.
    before, after = scores(62, 47, lost=6, gained=2)
    report = compare_scores({"gk": before}, {"gk": after}, threshold=0.05)
    assert report.verdict == "inconclusive" and report.flagged == [] and not report.forgetting
    assert report.pooled["detectable_drop"] > report.pooled["margin"]
    assert "cannot tell" in report.notes[0] and "detect drops of" in report.headline()


def test_a_stable_or_better_model_is_no_forgetting():
    before, after = scores(600, 400, lost=10, gained=20)
    report = compare_scores({"gk": before}, {"gk": after}, threshold=0.05)
    assert report.verdict == "no forgetting" and not report.forgetting and report.recommendations == []
    assert report.pooled["low"] > -report.pooled["margin"]


def _rows(n: int, choices: int) -> list[dict]:
    return [{"question": f"q{i}", "choices": [f"c{j}" for j in range(choices)], "answer": 0} for i in range(n)]


def _questions(path, n: int, choices: int) -> BenchmarkConfig:
    return BenchmarkConfig(name=path.stem, path=write_jsonl(path, _rows(n, choices)))


def test_better_than_chance_is_an_exact_binomial_test_against_the_choices_guessing_rate(tmp_path):
    from tunesmith.forgetting.chance import check_chance

    four = _questions(tmp_path / "four.jsonl", 10, 4)
    # P(X >= 6) for X ~ Binomial(10, 1/4): sum over k = 6..10 of C(10, k) 0.25^k 0.75^(10-k) = 0.01973
    check = check_chance("four", four.path, [True] * 6 + [False] * 4)
    assert check.chance == 0.25 and check.p_value == pytest.approx(0.01973, abs=1e-4) and check.above
    # P(X >= 3) = 0.4744: three right of ten is what guessing gives half the time
    assert not check_chance("four", four.path, [True] * 3 + [False] * 7).above
    # the guessing rate of the questions scored (lm-eval's limit takes the first ones), mixed choice counts averaged
    mixed = write_jsonl(tmp_path / "mixed.jsonl", _rows(10, 4) + _rows(4, 2))
    assert check_chance("mixed", mixed, [False] * 10).chance == 0.25
    assert check_chance("mixed", mixed, [False] * 14).chance == pytest.approx((10 / 4 + 4 / 2) / 14)


def test_benchmarks_the_base_model_answers_at_chance_are_left_out_of_the_gate(tmp_path):
    from tunesmith.config.schema import ForgettingConfig
    from tunesmith.forgetting.stage import leave_out_at_chance

    known, guessed = _questions(tmp_path / "known.jsonl", 200, 4), _questions(tmp_path / "guessed.jsonl", 200, 2)
    scores = {"known": {"correct": [True] * 80 + [False] * 120}, "guessed": {"correct": [True] * 95 + [False] * 105}}
    suite = {"benchmarks": [known, guessed], "local": ["known", "guessed"], "harness": [], "why": "yours"}
    before = {"suite": suite, "scores": scores, "key": "k", "cached_from": None}

    gated = leave_out_at_chance(ForgettingConfig(), before)
    assert list(gated["scores"]) == ["known"] and gated["suite"]["local"] == ["known"]
    assert [b.name for b in gated["suite"]["benchmarks"]] == ["known"]  # not scored after training either
    (left,) = gated["suite"]["at_chance"]
    assert left["name"] == "guessed" and left["accuracy"] == 0.475 and left["chance"] == 0.5
    assert "left out, answered at chance by the base model: guessed 0.47" in gated["suite"]["why"]
    assert gated["key"] != "k"  # the trained model's kept scores are for this gate only

    assert leave_out_at_chance(ForgettingConfig(leave_out_at_chance=False), before)["scores"] == scores
    # Every benchmark at chance: no subset is better evidence than another, so all stay, and the suite says why.
    at_chance = {"known": {"correct": [True] * 50 + [False] * 150}, "guessed": scores["guessed"]}
    kept = leave_out_at_chance(ForgettingConfig(), before | {"scores": at_chance})
    assert kept["scores"] == at_chance and kept["key"] == "k" and "every benchmark at chance" in kept["suite"]["why"]


def test_a_benchmark_left_out_at_chance_is_not_scored_after_training_and_the_report_says_why(tmp_path, tiny_model):
    from tunesmith.config import load_config
    from tunesmith.forgetting.stage import Scorable, leave_out_at_chance, run_forgetting

    known, guessed = _questions(tmp_path / "known.jsonl", 8, 4), _questions(tmp_path / "guessed.jsonl", 8, 2)
    files = f"[{{name: known, path: {known.path}}}, {{name: guessed, path: {guessed.path}}}]"
    extra = f"forgetting:\n  limit: 8\n  benchmarks: {files}\n"
    config = load_config(write_config(tmp_path / "run.yaml", REPO / "data" / "tickets.jsonl", tiny_model, extra))
    # P(X >= 6 of 8 | chance 1/4) = 0.004: above chance; 4 of 8 two-choice questions is a coin's result.
    scores = {"known": {"correct": [True] * 6 + [False] * 2}, "guessed": {"correct": [True] * 4 + [False] * 4}}
    suite = {"benchmarks": [known, guessed], "local": ["known", "guessed"], "harness": [], "why": "yours",
             "backend": "hf", "batch_size": 8}  # fmt: skip
    before = leave_out_at_chance(config.forgetting, {"suite": suite, "scores": scores, "key": "k", "cached_from": None})
    tuned = Scorable(lambda: load_model(str(tiny_model), CPU32), lambda: None, str(tiny_model), CPU32)

    result = run_forgetting(config, tuned, before, tmp_path / "after")
    assert list(result.after) == ["known"] and list(result.report.per_benchmark) == ["known"]
    assert not (tmp_path / "after" / "tunesmith_guessed.yaml").exists()
    assert (
        "answered at chance by the base model" in result.report.notes[-1] and "guessed 0.50" in result.report.notes[-1]
    )


def test_bundled_benchmark_runs_through_lm_eval(tmp_path, tiny_model):
    benchmark = BenchmarkConfig(name="general_knowledge", path=REPO / "data" / "general_knowledge.jsonl")
    scores = run_benchmarks(hf_lm(tiny_model, 8), [benchmark], tmp_path, limit=20)
    assert scores["general_knowledge"]["n"] == 20 == len(scores["general_knowledge"]["correct"])
    assert scores["general_knowledge"]["acc"] == pytest.approx(sum(scores["general_knowledge"]["correct"]) / 20)
    again = run_benchmarks(hf_lm(tiny_model, 8), [benchmark], tmp_path, limit=20)
    assert again == scores


@pytest.mark.skipif(not (SHARED_DATA / "general_mc").is_dir(), reason="../shared/data/general_mc is not present")
def test_shared_general_knowledge_subsets_run_through_lm_eval(tmp_path, tiny_model):
    names = ["arc-easy", "mmlu-global-facts"]
    benchmarks = [
        BenchmarkConfig(name=n.replace("-", "_"), path=SHARED_DATA / "general_mc" / f"{n}.jsonl") for n in names
    ]
    scores = run_benchmarks(hf_lm(tiny_model, 8), benchmarks, tmp_path, limit=10)
    assert set(scores) == {"arc_easy", "mmlu_global_facts"}
    assert all(s["n"] == 10 for s in scores.values())
    first = json.loads((SHARED_DATA / "general_mc" / "arc-easy.jsonl").read_text().splitlines()[0])
    assert {"question", "choices", "answer"} <= set(first)


def test_a_model_identical_to_the_base_is_never_forgetting(tmp_path, tiny_model):
    """A/A: five base models (seeds), each scored by lm-eval before and after a 'training' that changed nothing;
    whatever scoring does twice, the verdict must never be forgetting."""
    from tests.conftest import build_tiny_model

    benchmark = BenchmarkConfig(name="general_knowledge", path=REPO / "data" / "general_knowledge.jsonl")
    corpus = [json.loads(line)["question"] for line in benchmark.path.read_text().splitlines()]
    for seed in range(5):
        model = build_tiny_model(tmp_path / f"base-{seed}", corpus, seed=seed)
        before = run_benchmarks(hf_lm(model), [benchmark], tmp_path / f"before-{seed}", seed=seed)
        after = run_benchmarks(hf_lm(model), [benchmark], tmp_path / f"after-{seed}", seed=seed)
        report = compare_scores(before, after, threshold=0.05)
        assert report.verdict != "forgetting" and report.pooled["difference"] == 0
        # With no answer changed the interval is narrowest, yet 109 questions may still not exclude a drop the size
        # of the margin: then the verdict is inconclusive, never a guess.
        assert report.verdict in ("no forgetting", "inconclusive") and report.pooled["changed"] == 0


def test_auto_moves_to_the_large_tier_when_the_standard_one_cannot_resolve_the_threshold():
    from tunesmith.config.schema import ForgettingConfig
    from tunesmith.forgetting.stage import why_larger

    def scores(accuracy: float, n: int = 1016) -> dict:
        right = round(accuracy * n)
        return {"standard": {"correct": [True] * right + [False] * (n - right)}}

    # Near chance (0.36, the default model's standard-tier accuracy) 5% is 1.8 points; 1,016 questions detect
    # 3.4 points when 15% of the answers change. At 0.75 the threshold is 3.75 points: they resolve it.
    why = why_larger(ForgettingConfig(), [], scores(0.36))
    assert why == (
        "large: bundled benchmarks (forgetting.tier auto: the standard tier's 1016 questions detect drops of 3.4 "
        "points, more than the threshold of 1.8 points at the base model's accuracy 0.360)"
    )
    assert why_larger(ForgettingConfig(), [], scores(0.75)) is None
    assert why_larger(ForgettingConfig(threshold=0.2), [], scores(0.36)) is None
    # Not the auto suite, or its size set by the user: it stays as asked.
    for settings in (ForgettingConfig(tier="standard"), ForgettingConfig(limit=50)):
        assert why_larger(settings, [], scores(0.36)) is None
    assert why_larger(ForgettingConfig(tier="full"), ["arc_easy"], scores(0.36)) is None


def test_the_large_tier_holds_the_standard_questions_and_runs_through_lm_eval(tmp_path, tiny_model):
    from tunesmith.config.schema import LARGE_TIER, tier_benchmarks

    def questions(tier):
        rows = {b.name: [json.loads(line) for line in b.path.read_text().splitlines()] for b in tier_benchmarks(tier)}
        return {name: [(r["question"], tuple(r["choices"])) for r in found] for name, found in rows.items()}

    large, standard = questions("large"), questions("standard")
    assert sum(map(len, large.values())) == 4081 and list(large) == list(LARGE_TIER)
    assert all(set(standard[name]) <= set(large[name]) for name in standard)
    assert all(len(set(q)) == len(q) for q in large.values())  # no item twice
    scores = run_benchmarks(hf_lm(tiny_model), tier_benchmarks("large"), tmp_path, limit=2)
    assert {name: s["n"] for name, s in scores.items()} == dict.fromkeys(LARGE_TIER, 2)


def test_reading_a_question_once_gives_lm_evals_log_likelihoods(tiny_model):
    """The shared-prefix scorer (used on CPUs) against lm-eval's own HF model, request by request: multi-token and
    one-token choices, a question with a single choice, and one too long for the model (left-truncated by
    lm-eval), two questions of different lengths in one batch (the shorter one's padding masked). fp32 on the tiny
    model: the two orders of computation agree to float rounding (1e-4 on sums of a
    few log-probabilities of about -10 each)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tunesmith.forgetting.shared_prefix import shared_prefix

    model, tokenizer = load_model(str(tiny_model), CPU32)
    long_question = "Question: " + " ".join(["urgent billing technical general"] * 200) + "\nAnswer:"
    pairs = [
        ("Question: What is the capital of France?\nAnswer:", choice)
        for choice in (" Paris", " Berlin is a city", " urgent", " general technical billing urgent")
    ] + [
        ("Question: Which team takes a refund request for a charge made twice last month?\nAnswer:", choice)
        for choice in (" billing", " the technical support desk", " general enquiries team")
    ] + [("Question: Is the invoice late?\nAnswer:", c) for c in (" yes", " no")] + [
        ("Question: Only one?\nAnswer:", " one choice"), (long_question, " billing"), (long_question, " urgent now"),
    ]  # fmt: skip
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=256).loglikelihood(requests)
    shared = shared_prefix(HFLM)(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=256)
    ours = shared.loglikelihood(requests)
    assert [greedy for _, greedy in ours] == [greedy for _, greedy in stock]
    assert [ll for ll, _ in ours] == pytest.approx([ll for ll, _ in stock], abs=1e-4)
    assert len({ll for ll, _ in ours}) == len(pairs)  # not one number for every choice


def test_prefix_and_prompt_tuning_are_scored_as_lm_eval_scores_them(tiny_model):
    """Their virtual tokens come with every forward call, so a copied cache would add them twice."""
    from peft import LoraConfig, PrefixTuningConfig, get_peft_model

    from tunesmith.forgetting.shared_prefix import shares_prefixes

    model, _ = load_model(str(tiny_model), CPU32)
    assert shares_prefixes(model)
    assert shares_prefixes(get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])))
    model, _ = load_model(str(tiny_model), CPU32)
    assert not shares_prefixes(get_peft_model(model, PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM")))
