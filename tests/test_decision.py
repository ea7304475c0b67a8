import json
from dataclasses import replace

import pytest

from tunesmith.config.schema import DecisionConfig, TrainingConfig
from tunesmith.curation.records import make_example
from tunesmith.decision.baselines import Baseline, few_shot_examples
from tunesmith.decision.memory import Workload, estimate, estimate_all, fit, workload_for
from tunesmith.decision.rules import decide
from tunesmith.models.shape import ModelShape, model_shape

SMALL_MODEL_GB = {m: 1.0 for m in ("full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "spectrum")}


def _estimates(sizes: dict[str, float]):
    from tunesmith.decision.memory import MemoryEstimate

    return {m: MemoryEstimate(m, 1, gb, 0, 0, 0, 0, gb, ["test"]) for m, gb in sizes.items()}


def _baseline(name: str, score: float, n: int = 40) -> Baseline:
    """Right on the first round(score * n) validation examples, so a better baseline is right wherever a worse
    one is: every changed answer goes its way."""
    right = round(score * n)
    per_example = [1.0] * right + [0.0] * (n - right)
    template = {"system": "s", "shots": [], "retriever": None, "top_k": 0}
    return Baseline(name, "accuracy", score, 50.0, 0.1, n, template, per_example=per_example)


LOW = [_baseline("zero_shot", 0.30), _baseline("few_shot", 0.40)]


def _decide(n, baselines=LOW, sizes=SMALL_MODEL_GB, memory=16.0, method="auto", **config):
    return decide(
        n,
        DecisionConfig(**config),
        baselines,
        _estimates(sizes),
        memory,
        "test",
        method,
        {"system": "fallback"},
        task_type="classification",
    )


def test_under_ten_examples_means_prompting_only():
    record = _decide(5, baselines=[])
    assert (record.decision, record.method, record.stop) == ("prompting", None, True)
    assert record.rules[0].fired and "5 training examples" in record.rules[0].evidence
    assert record.winning_template == {"system": "fallback"}


def test_under_a_hundred_examples_means_few_shot_prompting():
    record = _decide(60)
    assert (record.decision, record.stop, record.winning_baseline) == ("few_shot_prompting", True, "few_shot")
    assert [r.name for r in record.rules if r.fired] == ["too_few_examples_to_fine_tune"]


def test_rag_wins_by_the_margin():
    record = _decide(
        500, baselines=LOW + [_baseline("rag_bm25", 0.48), _baseline("rag_embedding", 0.60)], rag_margin=0.1
    )
    assert record.decision == "rag" and record.winning_baseline == "rag_embedding"
    rule = next(r for r in record.rules if r.name == "rag_beats_prompting")
    assert rule.fired and "+20.0 points [" in rule.evidence and "on 40 validation examples" in rule.evidence
    assert _decide(500, baselines=LOW + [_baseline("rag_bm25", 0.45)], rag_margin=0.1).decision == "finetune"


def test_a_rag_lead_the_examples_cannot_tell_from_noise_does_not_stop_the_pipeline():
    # 3 of 10 right against 5 of 10: 20 points, twice the margin, but two changed answers (McNemar p = 0.5)
    few = [_baseline("zero_shot", 0.2, n=10), _baseline("few_shot", 0.3, n=10), _baseline("rag_bm25", 0.5, n=10)]
    record = _decide(500, baselines=few, rag_margin=0.1)
    rule = next(r for r in record.rules if r.name == "rag_beats_prompting")
    assert record.decision == "finetune" and not rule.fired
    assert "+20.0 points [" in rule.evidence and "cannot be told apart" in rule.evidence


def test_a_prompt_that_meets_the_target_stops_the_pipeline():
    record = _decide(500, baselines=[_baseline("zero_shot", 0.80), _baseline("few_shot", 0.91)], target=0.9)
    assert (record.decision, record.stop, record.winning_baseline) == ("few_shot_prompting", True, "few_shot")
    assert record.winning_template["system"] == "s"
    assert _decide(500, baselines=[_baseline("few_shot", 0.89)], target=0.9).decision == "finetune"


def test_enough_data_and_weak_prompts_mean_fine_tuning_with_lora():
    record = _decide(500)
    assert (record.decision, record.method, record.stop) == ("finetune", "lora", False)
    fired = [r.name for r in record.rules if r.fired]
    assert fired == ["fine_tune", "lora_fits"]


@pytest.mark.parametrize(
    ("config", "sizes", "n", "method"),
    [
        ({"priority": "quality"}, SMALL_MODEL_GB, 20_000, "full"),
        ({"priority": "quality"}, SMALL_MODEL_GB, 500, "lora"),  # too little data for full fine-tuning
        ({"priority": "cost"}, SMALL_MODEL_GB, 20_000, "lora"),
        ({"multi_task": True}, SMALL_MODEL_GB, 500, "adapter"),
        ({}, SMALL_MODEL_GB | {"full": 99, "lora": 20, "adapter": 20}, 500, "qlora"),  # only 4-bit fits in 16 GB
    ],
)
def test_method_follows_memory_data_and_priority(config, sizes, n, method):
    assert _decide(n, sizes=sizes, **config).method == method


def test_when_nothing_fits_the_answer_is_prompting():
    record = _decide(500, sizes={m: 500.0 for m in SMALL_MODEL_GB})
    assert record.decision == "prompting" and record.rules[-1].name == "nothing_fits_in_memory"


def test_overrides_keep_what_the_stage_would_have_chosen():
    record = _decide(60, force="finetune", method="qlora")
    assert (record.decision, record.method, record.overridden) == ("finetune", "qlora", True)
    assert record.would_have_chosen == {"decision": "few_shot_prompting", "method": None}
    method_only = _decide(500, method="ia3")
    assert (method_only.method, method_only.would_have_chosen) == ("ia3", {"decision": "finetune", "method": "lora"})
    assert not _decide(500, method="lora").overridden
    stopped = _decide(500, force="prompting")
    assert stopped.stop and stopped.winning_baseline == "zero_shot" and stopped.would_have_chosen["method"] == "lora"


def test_few_shot_examples_cover_every_label():
    train = [
        make_example(
            [{"role": "user", "content": f"{lab} {i}"}, {"role": "assistant", "content": lab}], f"{lab}{i}", lab
        )
        for lab in ("a", "b", "c")
        for i in range(5)
    ]
    shots = few_shot_examples(train, 4, seed=0)
    assert len(shots) == 4 and {e.label for e in shots[:3]} == {"a", "b", "c"}


# Published memory figures (see the reference texts), each under its stated assumptions.
def _llama(hidden, inter, layers, heads, kv_heads):
    from transformers import LlamaConfig

    return model_shape(
        LlamaConfig(
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            vocab_size=32000,
        )
    )


LLAMA_7B = _llama(4096, 11008, 32, 32, 32)
LLAMA_70B = _llama(8192, 28672, 80, 64, 8)
# 16-bit everything, one 512-token sequence, SDPA attention, no checkpointing, LoRA r=16 on q/v, 1 GB CUDA runtime.
PUBLISHED = Workload(
    seq_len=512,
    batch_size=1,
    weight_dtype="float16",
    activation_dtype="float16",
    optimizer_state_dtype="float16",
    overhead_gb=1.0,
    training=TrainingConfig(lora={"target_modules": ["q_proj", "v_proj"]}),
)


def test_full_fine_tuning_7b_in_16_bit_is_about_56_gb_of_weights_gradients_and_adam_states():
    e = estimate("full", LLAMA_7B, PUBLISHED)
    assert e.weights_gb == pytest.approx(14, rel=0.1) and e.gradients_gb == pytest.approx(14, rel=0.1)
    assert e.optimizer_gb == pytest.approx(28, rel=0.1)
    assert e.weights_gb + e.gradients_gb + e.optimizer_gb == pytest.approx(56, rel=0.1)


def test_full_fine_tuning_7b_in_fp32_is_about_112_gb():
    w = Workload(weight_dtype="float32", activation_dtype="float32", optimizer_state_dtype="float32")
    e = estimate("full", LLAMA_7B, w)
    assert e.weights_gb + e.gradients_gb + e.optimizer_gb == pytest.approx(112, rel=0.1)


def test_lora_and_qlora_7b_match_the_published_17_and_9_gb():
    assert estimate("lora", LLAMA_7B, PUBLISHED).total_gb == pytest.approx(17, rel=0.1)
    qlora = estimate("qlora", LLAMA_7B, PUBLISHED)
    assert qlora.total_gb == pytest.approx(9, rel=0.1)
    assert any("4-bit NF4" in a for a in qlora.assumptions) and any(
        "sequence length 512" in a for a in qlora.assumptions
    )


def test_qlora_70b_fits_an_80_gb_gpu_but_not_a_24_gb_one():
    total = estimate("qlora", LLAMA_70B, PUBLISHED).total_gb
    assert 35 < total < 80  # 70e9 x 0.5 bytes alone is 35 GB


def test_estimates_keep_the_methods_in_the_expected_order():
    e = {m: x.total_gb for m, x in estimate_all(LLAMA_7B, PUBLISHED).items()}
    assert e["qlora"] < e["lora"] < e["full"]
    assert e["prompt"] < e["lora"] < e["dora"]


def test_trainable_counts_match_what_peft_and_our_adapters_build(tiny_model):
    from tunesmith.records import Precision
    from tunesmith.training.methods import METHODS
    from tunesmith.training.sft import parameter_counts

    shape = model_shape(str(tiny_model))
    config = TrainingConfig(lora={"r": 8, "target_modules": ["q_proj", "v_proj"]})
    w = Workload(training=config)
    for method in ("full", "lora", "dora", "adapter", "prefix", "prompt", "ia3"):
        model = METHODS[method].build(str(tiny_model), config, Precision("cpu", "float32", "test"))
        trainable, total = parameter_counts(model)
        assert estimate(method, shape, w).trainable_params == trainable, method
        if method == "full":
            assert shape.total_params == total


@pytest.mark.parametrize(("n", "expected"), [(5, "prompting"), (8, "prompting"), (60, "few_shot_prompting")])
def test_small_data_reaches_the_decision_and_gets_a_prompt(
    prefect_server, mlflow_uri, tmp_path, tiny_model, n, expected
):
    """Data too small to split per class or to train on is not stopped by curation's training-readiness checks:
    the decision stage answers (prompting under 10 examples, few-shot prompting under 100) and hands over a
    prompt template that shows the examples as demonstrations when none could be measured."""
    from tests.conftest import LABELS, ticket_rows, write_config, write_jsonl
    from tunesmith.flows.decide import decide_flow

    per_label: dict[str, list[dict]] = {label: [] for label in LABELS}
    for row in ticket_rows():
        per_label[row["label"]].append(row)
    rows = [r for group in zip(*per_label.values(), strict=False) for r in group][:n]
    config = write_config(tmp_path / "run.yaml", write_jsonl(tmp_path / "data.jsonl", rows), tiny_model)
    record = decide_flow(str(config))
    assert record.decision == expected and record.stop
    assert record.winning_template["system"]
    if not record.baselines:  # nothing held out to measure on: the examples themselves are the demonstrations
        assert record.winning_template["shots"]
    curated = json.loads(next((tmp_path / "runs").rglob("curation_report.json")).read_text())
    assert curated["validation"]["success"] and not curated["problems"]
    assert any("training-readiness checks" in w for w in curated["warnings"])


# The ZeRO paper (Rajbhandari et al., 2020), Figure 1: a 7.5B-parameter model, mixed-precision Adam (2 bytes of
# weights, 2 of gradients, K = 12 of optimizer state per parameter), N = 64 devices, model states per device.
ZERO_PAPER = Workload(weight_dtype="float16", activation_dtype="float16", optimizer_state_dtype="float32",
                      master_weights=True, devices=64)  # fmt: skip
PSI_7_5B = ModelShape(7_500_000_000, 7_000_000_000, 50_000_000, {}, 4096, 32, 16384, 32, 4096, 32000)


@pytest.mark.parametrize(
    ("strategy", "per_device_gb"),
    [("ddp", 120.0), ("deepspeed_zero2", 16.6), ("deepspeed_zero3", 1.88), ("fsdp2", 1.88)],
)
def test_per_device_model_states_match_the_zero_paper(strategy, per_device_gb):
    e = estimate("full", PSI_7_5B, replace(ZERO_PAPER, strategy=strategy))
    assert e.model_states_gb() == pytest.approx(per_device_gb, rel=0.01)
    assert e.plan["strategy"] == strategy and e.plan["devices"] == 64
    assert any(f"{strategy} over 64 devices" in a for a in e.assumptions)
    if strategy in ("deepspeed_zero3", "fsdp2"):  # gathering layers to compute them costs beyond the shards
        assert 0 < e.sharding_buffers_gb < 1.0
    else:
        assert e.sharding_buffers_gb == 0


SMOLLM2_135M = _llama(576, 1536, 30, 9, 3)


def test_a_small_memory_budget_gets_a_smaller_micro_batch_or_checkpointing_not_prompting():
    # 400 classification examples on the 135M model, 2 GB available: at micro-batch 8 without checkpointing
    # nothing fits, but every trainer's levers (smaller micro-batches, activation checkpointing) make one fit.
    training = TrainingConfig(max_seq_length=512)
    w = workload_for(training, "float32", 512, on_gpu=False)
    budget = 2.0 * 0.9
    configured = estimate_all(SMOLLM2_135M, w)
    assert min(e.total_gb for e in configured.values() if e.method in ("lora", "qlora")) > budget
    fitted = estimate_all(SMOLLM2_135M, w, budget_gb=budget)
    record = decide(400, DecisionConfig(), LOW, fitted, 2.0, "test", task_type="classification")
    assert record.decision == "finetune" and record.method in ("lora", "qlora")
    plan = fitted[record.method].plan
    assert plan["batch_size"] * plan["gradient_accumulation_steps"] == 8  # the same effective batch
    assert plan["batch_size"] < 8 or plan["gradient_checkpointing"]
    assert "micro-batch" in next(r.evidence for r in record.rules if r.name == "lora_fits")


def test_whether_qlora_7b_fits_a_24_gb_card_depends_on_micro_batch_and_checkpointing():
    w = workload_for(TrainingConfig(), "bfloat16", 2048, on_gpu=True)
    configured = estimate("qlora", LLAMA_7B, w)
    assert configured.total_gb > 24 * 0.9  # 8 sequences of 2048 tokens do not
    fitted = fit("qlora", LLAMA_7B, w, 24 * 0.9)
    # LoRA on every linear layer keeps more activations: it fits with checkpointing, or a smaller micro-batch
    assert fitted.total_gb <= 24 * 0.9 and (fitted.plan["batch_size"] < 8 or fitted.plan["gradient_checkpointing"])
    assert fit("full", LLAMA_7B, w, 24 * 0.9).total_gb > 24 * 0.9  # full fine-tuning does not fit at any setting
    assert fit("qlora", LLAMA_7B, w, 16 * 0.9).total_gb <= 16 * 0.9  # nor does QLoRA need more than 16 GB


def test_full_fine_tuning_that_fits_only_sharded_is_chosen_for_quality_with_the_per_device_figure():
    training = TrainingConfig(distributed={"strategy": "fsdp2", "num_processes": 8})
    one = workload_for(TrainingConfig(), "bfloat16", 512, on_gpu=True)
    sharded = workload_for(training, "bfloat16", 512, on_gpu=True, devices=8)
    assert estimate("full", LLAMA_7B, one).total_gb > 80 * 0.9
    estimates = estimate_all(LLAMA_7B, sharded, budget_gb=80 * 0.9)
    record = decide(
        20_000, DecisionConfig(priority="quality"), LOW, estimates, 80.0, "test", task_type="classification"
    )
    assert record.method == "full"
    evidence = next(r.evidence for r in record.rules if r.name == "quality_priority_with_enough_data_and_memory")
    assert "per device, fsdp2 over 8 devices" in evidence


def _context(model, budget_gb: float | None, n_train: int = 160):
    from tunesmith.models.shape import hidden_size
    from tunesmith.training.plan import PlanContext

    return PlanContext(str(model), n_train=n_train, max_seq_length=256, budget_gb=budget_gb, budget_source="test",
                       hidden=hidden_size(str(model)))  # fmt: skip


def test_the_plan_that_fits_is_what_training_uses(tiny_model):
    """Where the configured batch fits, the plan keeps it; where it does not, the plan takes the micro-batch,
    accumulation and checkpointing that the memory estimate found to fit, and says so."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.decision.memory import estimate, workload_for
    from tunesmith.models.shape import model_shape
    from tunesmith.training.plan import plan_training

    training = TrainingConfig(effective_batch_size=16, batch_size=16)
    fits = plan_training(training, "full", _context(tiny_model, 100.0))
    assert (fits.training["batch_size"], fits.training["gradient_accumulation_steps"]) == (16, 1)
    assert fits.sources["batch_size"] == "config" and fits.memory["fits"]
    full_batch = estimate("full", model_shape(str(tiny_model)), workload_for(training, "float32", 256, False)).total_gb
    shrunk = plan_training(training, "full", _context(tiny_model, 0.6 * full_batch))
    batch, accumulation = shrunk.training["batch_size"], shrunk.training["gradient_accumulation_steps"]
    assert batch < 16 and batch * accumulation >= 16 and shrunk.sources["batch_size"] == "memory plan"
    assert shrunk.schedule["effective_batch_size"] == batch * accumulation
    assert shrunk.memory["total_gb"] <= shrunk.memory["budget_gb"]


def test_a_derived_plan_is_checked_against_memory_again(tiny_model):
    """A change (a search trial, a retraining's new setting) goes through the same builder: the method's defaults
    follow a new method, and a setting that cannot fit is refused before anything is loaded."""
    from tunesmith.config.schema import TrainingConfig
    from tunesmith.errors import NotEnoughMemory
    from tunesmith.training.plan import derive, plan_training

    plan = plan_training(TrainingConfig(), "lora", _context(tiny_model, 100.0))
    faster = derive(plan, {"learning_rate": 5e-3}, "search trial")
    assert faster.training["learning_rate"] == 5e-3 and faster.sources["learning_rate"] == "search trial"
    assert "batch_size" not in faster.sources  # still the default, not taken for a value the config set
    assert derive(plan, {"method": "ia3"}, "comparison").training["learning_rate"] == 1e-2  # IA3's own default
    smallest = replace(workload_for(TrainingConfig(), "float32", 256, False), batch_size=1, gradient_checkpointing=True)
    shape = model_shape(str(tiny_model))
    lora_gb, full_gb = (estimate(m, shape, smallest).total_gb for m in ("lora", "full"))
    assert lora_gb < full_gb  # full fine-tuning keeps gradients and Adam states for every weight
    tight = plan_training(TrainingConfig(), "lora", _context(tiny_model, (lora_gb + full_gb) / 2))
    with pytest.raises(NotEnoughMemory, match="does not fit"):
        derive(tight, {"method": "full"}, "comparison")


def test_the_logits_cost_one_chunk_of_trls_fused_lm_head_not_tokens_times_vocabulary():
    """TRL scores at most 4096 positions x 32768 vocabulary entries at a time: a 128k-vocabulary model on 14k
    tokens has a logits term of one chunk (measured on an H100: Llama-3.2-1B LoRA, batch 32 x 441 tokens,
    9.2 GB peak with checkpointing, where tokens x vocabulary alone would be 54 GB)."""
    from tunesmith.decision.memory import LOGIT_TOKEN_CHUNK, LOGIT_VOCAB_CHUNK

    def activations(batch: int) -> float:
        return estimate("lora", LLAMA_7B, replace(PUBLISHED, batch_size=batch, seq_len=2048)).activations_gb

    per_sequence = activations(4) - activations(3)  # the layers' share of one more sequence, logits capped
    chunk_gb = LOGIT_TOKEN_CHUNK * LOGIT_VOCAB_CHUNK * 30 / 1e9
    assert activations(4) == pytest.approx(4 * per_sequence + chunk_gb, rel=0.05)


def test_tunesmith_decide_shows_the_plan_with_where_each_value_came_from(tiny_model):
    from tunesmith.decision.render import render_decision
    from tunesmith.records import DecisionRecord
    from tunesmith.training.plan import plan_training

    plan = plan_training(TrainingConfig(batch_size=64, epochs=2), "lora", _context(tiny_model, 0.01))
    shown = render_decision(DecisionRecord("finetune", "lora", training_plan=plan.to_json()))
    assert "## Training plan (estimated" in shown
    assert "| epochs | 2 | config |" in shown
    assert f"| batch_size | {plan.training['batch_size']} | memory plan |" in shown
    assert "| learning_rate |" in shown and "width fit" in shown


def test_baselines_carry_intervals_and_say_when_two_prompts_cannot_be_told_apart():
    from tunesmith.decision.baselines import Baseline, compare_best_prompts
    from tunesmith.evaluation.metrics import score_interval

    def baseline(name: str, right: list[int]) -> Baseline:
        per_example = [float(r) for r in right]
        low, high = score_interval("classification", per_example)
        return Baseline(name, "accuracy", sum(per_example) / len(right), 100, 0.1, len(right), {}, low, high,
                        per_example)  # fmt: skip

    zero = baseline("zero_shot", [1] * 9 + [0] * 31)  # 0.225 on 40 examples
    few = baseline("few_shot", [1] * 10 + [0] * 30)  # 0.250: one more right
    assert zero.low < zero.score < zero.high and zero.high - zero.low > 0.2  # 40 examples: a wide interval
    assert compare_best_prompts([zero, few], "classification").endswith("cannot be told apart")
    strong = baseline("few_shot", [1] * 9 + [1] * 25 + [0] * 6)  # 25 more right, none lost
    assert compare_best_prompts([zero, strong], "classification").endswith("a real difference")
    assert compare_best_prompts([zero], "classification") == ""
