import math

import numpy as np
import pytest
import torch

from tests.conftest import LABELS
from tests.test_training import CPU32, _memorisable_set, min_answer_probability
from tunesmith.config.schema import TrainingConfig
from tunesmith.curation.records import make_example, read_examples
from tunesmith.evaluation.evaluate import prediction_rows, score_model, task_type
from tunesmith.evaluation.judge import parse_verdict
from tunesmith.evaluation.metrics import (
    classification_metrics,
    confusion,
    generation_metrics,
    json_metrics,
    mean_interval,
)
from tunesmith.evaluation.scoring import generate, label_logprobs, perplexity, token_batches
from tunesmith.models.load import load_model
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import train_files


def test_classification_metrics_match_hand_computed_values():
    refs = ["a", "a", "b", "b", "c", "c"]
    preds = ["a", "b", "b", "b", "a", "c"]
    metrics = classification_metrics(refs, preds, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # per class: a: p=1/2 r=1/2 (F1 .5); b: p=2/3 r=1 (F1 .8); c: p=1 r=1/2 (F1 2/3)
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert (metrics["precision_b"], metrics["recall_b"]) == (pytest.approx(2 / 3), 1.0)
    assert (metrics["precision_c"], metrics["recall_c"]) == (1.0, 0.5)
    assert confusion(refs, preds, ["a", "b", "c"]) == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_generation_metrics_match_hand_computed_values():
    metrics = generation_metrics(["the cat sat", "Hello World"], ["the cat", "hello  world"])
    assert metrics["exact_match"] == pytest.approx(0.5)
    # ROUGE-L F1: "the cat" vs "the cat sat": p=1, r=2/3 -> 0.8; second pair identical after lower-casing -> 1
    assert metrics["rougeL"] == pytest.approx((0.8 + 1.0) / 2)
    assert generation_metrics(["a b c d e"], ["a b c d e"])["bleu"] == pytest.approx(100.0)
    assert generation_metrics(["the cat sat on the mat"], ["dogs run"])["bleu"] == pytest.approx(0.0)


def test_a_mean_score_gets_a_bootstrap_interval_that_narrows_with_more_examples():
    import random

    rng = random.Random(0)
    few = [rng.random() for _ in range(40)]
    many = few * 10
    low, high = mean_interval(few)
    assert low < sum(few) / len(few) < high
    wide, narrow = high - low, mean_interval(many)[1] - mean_interval(many)[0]
    # The interval's width falls as 1/sqrt(n): ten times the examples, about a third of the width.
    assert 0.2 < narrow / wide < 0.45
    assert mean_interval([0.5] * 10) == (0.5, 0.5) and all(x != x for x in mean_interval([0.3]))
    metrics = generation_metrics(["the cat sat", "Hello World", "a b"], ["the cat", "hello  world", "c"])
    assert metrics["rougeL_ci_low"] <= metrics["rougeL"] <= metrics["rougeL_ci_high"]


def test_the_comparison_table_gives_rouge_l_its_bootstrap_interval_and_accuracy_its_wilson_interval():
    from tunesmith.comparison.table import rows
    from tunesmith.records import MethodResult

    scores = {"test_rougeL": 0.299, "test_n": 75.0, "test_rougeL_ci_low": 0.261, "test_rougeL_ci_high": 0.338}
    generation = MethodResult("lora", "trained", metrics=scores, task_metric="test_rougeL")
    assert rows([generation])[0]["95% CI"] == "0.261-0.338"
    classification = MethodResult("lora", "trained", metrics={"test_accuracy": 0.75, "test_n": 128.0},
                                  task_metric="test_accuracy")  # fmt: skip
    low, high = map(float, rows([classification])[0]["95% CI"].split("-"))
    assert (low, high) == (pytest.approx(0.668, abs=1e-3), pytest.approx(0.817, abs=1e-3))  # Wilson, 96 of 128


def test_json_metrics_match_hand_computed_values():
    references = ['{"name": "Ann", "age": 3}', '{"name": "Bo", "age": 5}', '{"name": "Cy", "age": 7}']
    predictions = ['{"name": "Ann", "age": 4}', "not json", '{"name": "Cy", "age": "7"}']
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["name", "age"]}
    metrics = json_metrics(references, predictions, schema)
    assert metrics["valid_json_rate"] == pytest.approx(2 / 3)
    assert metrics["schema_valid_rate"] == pytest.approx(1 / 3)  # "7" is a string, not an integer
    assert metrics["field_accuracy"] == pytest.approx(2 / 6)  # Ann's name and Cy's name
    examples = [
        make_example([{"role": "user", "content": "q"}, {"role": "assistant", "content": r}], "s") for r in references
    ]
    assert task_type(None, examples) == "json" and task_type(["x"], examples) == "classification"


def test_perplexity_is_exp_of_mean_answer_token_loss(tiny_model):
    model, tokenizer = load_model(str(tiny_model), CPU32)
    conversation = [{"role": "user", "content": "refund my card"}, {"role": "assistant", "content": "billing"}]
    from tunesmith.training.tokenize import tokenize_conversation

    row = tokenize_conversation(tokenizer, conversation)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss.item()
    # Two paths to the same number differ by float rounding (1e-6 relative here); a mask or shift bug would not.
    assert perplexity(model, tokenizer, [conversation, conversation], batch_size=2) == pytest.approx(
        math.exp(loss), rel=1e-3
    )


def test_perplexity_of_padded_conversations_of_mixed_lengths_pools_their_answer_tokens(tiny_model):
    model, tokenizer = load_model(str(tiny_model), CPU32)
    from tunesmith.training.tokenize import tokenize_conversation

    conversations = [
        [{"role": "user", "content": "refund " * n}, {"role": "assistant", "content": "billing " * (4 - n)}]
        for n in (1, 2, 3)
    ]
    nll = tokens = 0.0
    for conversation in conversations:  # each alone, no padding: the reference
        row = tokenize_conversation(tokenizer, conversation)
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss
        answer_tokens = sum(label != -100 for label in row["labels"][1:])
        nll, tokens = nll + loss.item() * answer_tokens, tokens + answer_tokens
    assert perplexity(model, tokenizer, conversations, batch_size=3) == pytest.approx(math.exp(nll / tokens), rel=1e-3)


def test_token_batches_bound_rows_and_padded_tokens_and_keep_every_index():
    lengths = [900, 10, 4000, 300, 300, 299, 1200, 50]
    batches = token_batches(lengths, max_rows=3, max_tokens=1000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1000
    assert [2] in batches and [6] in batches  # over the budget alone: a batch each, not dropped


def test_label_scores_equal_the_models_own_log_likelihood(tiny_model):
    model, tokenizer = load_model(str(tiny_model), CPU32)
    prompt = [{"role": "user", "content": "my card was charged twice"}]
    scores = label_logprobs(model, tokenizer, [prompt], ["billing", "general"], batch_size=1)
    full = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": "billing"}], tokenize=True, return_dict=True
    )["input_ids"]
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)[
        "input_ids"
    ]
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0]
    logprobs = torch.log_softmax(logits, -1)
    end = full.index(tokenizer.eos_token_id, len(head)) + 1  # the reply up to its end-of-turn token
    expected = sum(logprobs[i - 1, full[i]].item() for i in range(len(head), end))
    # The cached and the plain forward pass agree to about 1e-6 on a log-likelihood of about -47 (float rounding);
    # a wrong position, a dropped token or padding that leaks into attention moves it by whole nats.
    assert scores.shape == (1, 2)
    assert scores[0, 0] == pytest.approx(expected, abs=1e-3)
    batched = label_logprobs(model, tokenizer, [prompt, prompt], ["billing", "general"], batch_size=3)
    assert np.allclose(batched, np.vstack([scores, scores]), atol=1e-3)  # padding does not change scores


ODD_LABELS = ["card", "card_fee", "card fee?", "card_arrival", "café crème", "2fa reset", "billing", "general"]


@pytest.mark.parametrize(("candidates", "attention"), [(None, "sdpa"), (1, "sdpa"), (3, "sdpa"), (None, "eager")])
def test_label_tree_scores_equal_one_sequence_per_label(tiny_model, candidates, attention):
    """The prefix tree (labels sharing tokens, several prompts of different lengths per pass) gives each label the
    score of its own whole sequence; pruning by the first-token bound never changes which label wins."""
    from tunesmith.evaluation.scoring import _label_logprobs_per_prompt

    model, tokenizer = load_model(str(tiny_model), CPU32)
    model.set_attn_implementation(attention)  # a boolean mask for SDPA, an additive one for eager attention
    prompts = [
        [{"role": "user", "content": text}]
        for text in ["my card was charged twice", "refund", "the app crashes when I log in with two factor", "hi"]
    ]
    plain = _label_logprobs_per_prompt(model, tokenizer, prompts, ODD_LABELS, batch_size=8)
    tree = label_logprobs(model, tokenizer, prompts, ODD_LABELS, batch_size=3, candidates=candidates)
    # Same sums of the same log-probabilities in another order and batch shape: float rounding only (~1e-5).
    assert (tree.argmax(1) == plain.argmax(1)).all()
    assert np.allclose(tree.max(1), plain.max(1), atol=1e-3)
    scored = np.isfinite(tree)
    assert np.allclose(tree[scored], plain[scored], atol=1e-3)
    if candidates is None:
        assert scored.all()


def test_fine_tuned_model_beats_base_on_the_set_it_learned(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    # A cosine decay settles the tiny model on what it memorised: over twelve training seeds the lowest answer
    # probability was 0.85 to 0.93. A constant rate kept it bouncing (0.70 to 0.89 after 40 steps, and one seed
    # fell to 0.09 after 80), which is how a CPU's different rounding could decide the outcome.
    config = TrainingConfig(
        max_steps=60,
        learning_rate=1e-2,
        batch_size=4,
        warmup_ratio=0.0,
        lr_scheduler="cosine",
        eval_steps=60,
        early_stopping_patience=None,
    )
    trained = train_files(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / "out")
    examples = read_examples(val)
    base = score_model(*load_model(str(tiny_model), CPU32), examples, "Classify.", LABELS, 8)
    tuned_model = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
    # Every answer token is then the model's clear greedy choice, so what follows holds on any CPU (see
    # min_answer_probability).
    assert min_answer_probability(*tuned_model, examples, "Classify.", LABELS) > 0.5
    tuned = score_model(*tuned_model, examples, "Classify.", LABELS, 8)
    assert tuned.metrics["accuracy"] == 1.0 > base.metrics["accuracy"]
    rows = prediction_rows(examples, base, tuned)
    assert all(r["finetuned_correct"] for r in rows)
    assert [r["base_correct"] for r in rows] == sorted(r["base_correct"] for r in rows)  # base errors first here
    prompts = [[{"role": "system", "content": "Classify."}] + e.messages[:-1] for e in examples]
    one_by_one = [answer_label(generate(*tuned_model, [p], max_new_tokens=8)[0]) for p in prompts]
    batched = [answer_label(text) for text in generate(*tuned_model, prompts, max_new_tokens=8)]  # left-padded
    # Free generation, parsed to the label it names: at least 90% right on the memorised set, and batching agrees
    # with one-by-one on at least 90% (left padding changes the float path, not the clear greedy choice).
    labels = [e.answer for e in examples]
    assert sum(a == b for a, b in zip(one_by_one, labels, strict=True)) >= 0.9 * len(labels)
    assert sum(a == b for a, b in zip(batched, one_by_one, strict=True)) >= 0.9 * len(labels)


def answer_label(text: str) -> str | None:
    """The label a free-form answer names first (case and surrounding whitespace ignored), or None."""
    words = text.strip().lower()
    return next((label for label in sorted(LABELS, key=len, reverse=True) if words.startswith(label)), None)


@pytest.mark.parametrize(
    ("reply", "score", "rationale"),
    [
        ('{"score": 4, "rationale": "Mostly right."}', 4.0, "Mostly right."),
        ('Sure! {"score": 2, "rationale": "wrong city"} done', 2.0, "wrong city"),
        ("I would give it a 5 out of 5", 5.0, "I would give it a 5 out of 5"),
        ("no idea", None, "no idea"),
        ('{"score": 9}', None, '{"score": 9}'),
    ],
)
def test_judge_replies_are_parsed_for_a_score_and_a_rationale(reply, score, rationale):
    verdict = parse_verdict(reply)
    assert (verdict.score, verdict.rationale) == (score, rationale)


def test_task_type_falls_back_to_generation():
    examples = [make_example([{"role": "user", "content": "q"}, {"role": "assistant", "content": "free text"}], "s")]
    assert task_type(None, examples) == "generation"


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_prompt_and_prefix_tuned_models_are_scored_by_their_own_likelihood(tmp_path, tiny_model, method):
    """PEFT re-inserts virtual tokens on every call, so the prompt's KV cache cannot be reused; the scores
    must still equal the model's own likelihood of each label, and logits line up with the input."""
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

    from tunesmith.training.methods.base import load_base
    from tunesmith.training.tokenize import tokenize_conversation

    settings = {"num_virtual_tokens": 4, "task_type": "CAUSAL_LM"}
    peft_config = PromptTuningConfig(**settings) if method == "prompt" else PrefixTuningConfig(**settings)
    torch.manual_seed(0)
    get_peft_model(load_base(str(tiny_model)), peft_config).save_pretrained(str(tmp_path / "adapter"))
    load_model(str(tiny_model), CPU32)[1].save_pretrained(str(tmp_path / "adapter"))
    model, tokenizer = load_trained(str(tiny_model), method, str(tmp_path / "adapter"), CPU32)

    prompt = [{"role": "user", "content": "my card was charged twice"}]
    scores = label_logprobs(model, tokenizer, [prompt], ["billing", "general"], batch_size=2)
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
    for k, label in enumerate(["billing", "general"]):
        full = tokenizer.apply_chat_template(
            prompt + [{"role": "assistant", "content": label}], tokenize=True, return_dict=True
        )["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full])).logits[0]
        assert logits.shape[0] == len(full)  # one row per input token, virtual positions dropped
        logprobs = torch.log_softmax(logits, -1)
        end = full.index(tokenizer.eos_token_id, len(head["input_ids"])) + 1  # the reply up to its end of turn
        expected = sum(logprobs[i - 1, full[i]].item() for i in range(len(head["input_ids"]), end))
        assert scores[0, k] == pytest.approx(expected, abs=1e-3)  # float rounding only, as above

    conversation = prompt + [{"role": "assistant", "content": "billing"}]
    row = tokenize_conversation(tokenizer, conversation)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss.item()
    assert perplexity(model, tokenizer, [conversation], batch_size=1) == pytest.approx(math.exp(loss), rel=1e-3)
