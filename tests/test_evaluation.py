import numpy as np
import pytest
import torch

from tasks.config.schema import TrainingConfig
from tasks.curation.records import read_examples
from tasks.evaluation.evaluate import prediction_rows, score_model
from tasks.evaluation.metrics import classification_metrics, generation_metrics
from tasks.evaluation.scoring import generate, label_logprobs
from tasks.models.load import load_model
from tasks.training.inference import load_trained
from tasks.training.sft import train_model
from tests.conftest import LABELS
from tests.test_training import CPU32, _memorisable_set


def test_classification_metrics_match_hand_computed_values():
    refs = ["a", "a", "b", "b", "c", "c"]
    preds = ["a", "b", "b", "b", "a", "c"]
    metrics = classification_metrics(refs, preds, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # per class F1: a: p=1/2 r=1/2 -> .5; b: p=2/3 r=1 -> .8; c: p=1 r=1/2 -> 2/3
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_generation_metrics_match_hand_computed_values():
    metrics = generation_metrics(["the cat sat", "Hello World"], ["the cat", "hello  world"])
    assert metrics["exact_match"] == pytest.approx(0.5)
    # ROUGE-L F1: "the cat" vs "the cat sat": p=1, r=2/3 -> 0.8; second pair identical after lower-casing -> 1
    assert metrics["rougeL"] == pytest.approx((0.8 + 1.0) / 2)


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
    expected = sum(logprobs[i - 1, full[i]].item() for i in range(len(head), len(full)))
    assert scores.shape == (1, 2)
    assert scores[0, 0] == pytest.approx(expected, abs=1e-4)
    batched = label_logprobs(model, tokenizer, [prompt, prompt], ["billing", "general"], batch_size=3)
    assert np.allclose(batched, np.vstack([scores, scores]), atol=1e-4)  # padding does not change scores


def test_fine_tuned_model_beats_base_on_the_set_it_learned(tmp_path, tiny_model):
    train, val = _memorisable_set(tmp_path)
    config = TrainingConfig(max_steps=40, learning_rate=1e-2, batch_size=4, warmup_ratio=0.0, lr_scheduler="constant")
    trained = train_model(str(tiny_model), str(train), str(val), "Classify.", config, "lora", CPU32, tmp_path / "out")
    examples = read_examples(val)
    base = score_model(*load_model(str(tiny_model), CPU32), examples, "Classify.", LABELS, 8)
    tuned = score_model(
        *load_trained(str(tiny_model), "lora", trained.output_dir, CPU32), examples, "Classify.", LABELS, 8
    )
    assert tuned.metrics["accuracy"] == 1.0
    assert tuned.metrics["accuracy"] > base.metrics["accuracy"]
    rows = prediction_rows(examples, base, tuned)
    assert [r["reference"] for r in rows] and all(r["finetuned_correct"] for r in rows)

    replies = generate(
        *load_trained(str(tiny_model), "lora", trained.output_dir, CPU32),
        [[{"role": "system", "content": "Classify."}] + e.messages[:-1] for e in examples],
        max_new_tokens=8,
    )
    assert replies == [e.answer for e in examples]  # greedy generation agrees with label scoring, batched
