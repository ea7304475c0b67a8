"""Multi-label classification: rows with a label list, the answer a model is trained to write and read back,
iterative stratification that keeps rare labels in every split, the set metrics, training, serving and `check`."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from tests.conftest import LABELS, SHARED_DATA, write_jsonl
from tunesmith.config import load_config
from tunesmith.curation.load import load_records
from tunesmith.curation.records import make_example, read_examples, write_examples
from tunesmith.curation.split import iterative_split, label_counts
from tunesmith.curation.stage import run_curation
from tunesmith.evaluation.multilabel import multilabel_metrics, sample_f1, score_label_sets
from tunesmith.flows.cli import app
from tunesmith.formats import RowError, get_format
from tunesmith.formats.multilabel import answer_for, parse_answer
from tunesmith.prompts import prompt_messages, training_prompt
from tunesmith.records import Precision
from tunesmith.serving.predict import Predictor, read_requests
from tunesmith.training.inference import load_trained
from tunesmith.training.sft import train_files

CPU32 = Precision("cpu", "float32", "tests")
PARSE = get_format("multilabel").parse


def test_the_answer_lists_the_labels_in_the_label_sets_order_or_none():
    parsed = PARSE({"text": "card lost and charged twice", "labels": ["technical", "billing"]}, LABELS)
    assert parsed.labels == ["billing", "technical"] and parsed.messages[-1]["content"] == "billing, technical"
    assert PARSE({"text": "Sunday", "labels": []}, LABELS).messages[-1]["content"] == "none"


@pytest.mark.parametrize(
    ("row", "kind", "says"),
    [
        ({"text": "hi", "labels": ["billing", "refunds"]}, "unknown_label", "'refunds'"),
        ({"text": "hi", "labels": "billing"}, "wrong_type", "list of strings"),
        ({"text": "hi"}, "missing_field", "[] when none applies"),
        ({"text": " ", "labels": []}, "empty_text", "empty"),
    ],
)
def test_a_row_without_a_usable_label_list_is_rejected_naming_the_field(row, kind, says):
    with pytest.raises(RowError) as err:
        PARSE(row, LABELS)
    assert err.value.kind == kind and says in err.value.reason
    assert err.value.field == ("text" if kind == "empty_text" else "labels")


def test_an_answer_is_read_back_forgiving_case_spaces_and_order_and_naming_what_is_not_a_label():
    labels = ["how_long", "pin", "new", "request_info"]
    assert parse_answer("PIN, How long", labels) == (["how_long", "pin"], [])
    assert parse_answer("new; request info\nrefund", labels) == (["new", "request_info"], ["refund"])
    assert parse_answer("none", labels) == ([], []) and answer_for([], labels) == "none"


def test_the_set_metrics_match_their_definitions():
    labels = ["a", "b", "c"]
    refs, preds = [["a", "b"], ["c"], []], [["a"], ["c"], ["b"]]
    m = multilabel_metrics(refs, preds, labels)
    # true positives a, c; false positive b (third); false negative b (first): micro P = R = 2/3.
    assert m["micro_f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 + 0 + 1) / 3)  # a: 1, b: 0, c: 1
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)  # two wrong decisions of nine
    assert m["samples_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert sample_f1([], []) == 1.0 and m["recall_b"] == 0.0 and m["precision_a"] == 1.0


def _multilabel_examples(n: int, seed: int = 0) -> list:
    """n examples over 20 labels whose frequencies fall off steeply (label 19 on 4 examples), one to three labels
    each, and a tenth with none: the long tail of NLU++-like data."""
    rng = random.Random(seed)
    labels = [f"l{i}" for i in range(20)]
    weights = [1 / (i + 1) ** 1.3 for i in range(20)]
    examples = []
    for i in range(n):
        chosen = [] if i % 10 == 0 else sorted(set(rng.choices(labels, weights, k=rng.randint(1, 3))))
        if i < 4:
            chosen = sorted({*chosen, "l19"})
        answer = answer_for(chosen, labels)
        examples.append(make_example([{"role": "user", "content": f"message {i}"},
                                      {"role": "assistant", "content": answer}], f"f:{i}", labels=chosen))  # fmt: skip
    return examples


def test_iterative_splits_keep_a_label_with_four_examples_in_every_split_and_the_proportions_of_the_rest():
    examples = _multilabel_examples(600)
    splits = iterative_split(examples, 0.1, 0.1, seed=3)
    parts = [splits.train, splits.validation, splits.test]
    assert sorted(e.id for p in parts for e in p) == sorted(e.id for e in examples)
    counts = [label_counts(p) for p in parts]
    assert all(c["l19"] >= 1 for c in counts), counts  # 4 examples: at least one in each split
    total = label_counts(examples)
    for label, n in total.items():
        if n >= 40:  # a label common enough for proportions: within two examples of its 10% share
            assert abs(counts[2][label] - 0.1 * n) <= 2, (label, n, counts[2][label])
    assert abs(len(splits.test) - 60) <= 3 and abs(len(splits.validation) - 60) <= 3


@pytest.mark.parametrize("strategy", ["oversample", "cap"])
def test_balancing_label_sets_lifts_rare_labels_or_caps_common_ones_without_losing_a_rare_label(strategy):
    from tunesmith.curation.balance import balance

    examples = _multilabel_examples(600)
    result = balance(examples, strategy, cap_ratio=3.0, seed=1)
    before, after = result.before, result.after
    assert before["l19"] >= 4 and result.imbalance_ratio > 10
    if strategy == "oversample":  # ML-ROS: every label brought to the mean imbalance at least, no example lost
        largest = max(before.values())
        mean_imbalance = sum(largest / n for n in before.values()) / len(before)
        assert all(largest / n <= mean_imbalance for n in after.values()) and after["l19"] > before["l19"]
        assert result.added > 0 and not result.dropped
        assert len(result.examples) == len(examples) + result.added <= 2 * len(examples)
        assert after["l0"] / after["l19"] < before["l0"] / before["l19"]
    else:  # every example of a label at or under 3x the rarest is kept
        limit = 3 * min(before.values())
        assert result.dropped and all(after[label] == n for label, n in before.items() if n <= limit)
        assert max(after.values()) < max(before.values())


def test_multilabel_data_is_curated_with_conflicts_by_label_set_and_its_suite(tmp_path, tiny_model):
    examples = _multilabel_examples(200)
    rows = [{"text": e.prompt_text, "labels": e.labels} for e in examples]
    rows.append({"text": "message 1", "labels": ["l0"] if "l0" not in rows[1]["labels"] else ["l5"]})  # conflict
    rows.append(dict(rows[2]))  # an exact duplicate
    rows.append({"text": "message x", "labels": ["l99"]})
    data_path = write_jsonl(tmp_path / "multi.jsonl", rows)
    labels = ", ".join(f"l{i}" for i in range(20))
    config_path = tmp_path / "run.yaml"
    config_path.write_text(f"name: multi\nmodel: {tiny_model}\noutput_dir: {tmp_path}\ndata:\n  path: {data_path}\n"
                           f"  format: multilabel\n  labels: [{labels}]\n  min_examples_per_class: 1\n")  # fmt: skip
    config = load_config(str(config_path))
    data = run_curation(config.data, str(tiny_model), False, training_prompt(config), None, tmp_path / "curated")
    assert data.task_type == "multilabel" and data.validation["success"], data.validation["summary"]
    assert data.counts["read"] == 203 and data.rejected_by_kind["unknown_label"] == 1
    assert data.counts["exact_duplicates"] == 1
    conflicts = json.loads((tmp_path / "curated" / "conflicts.json").read_text())
    assert any({c["text"] for c in pair} == {"message 1"} for pair in conflicts)
    assert data.class_counts["test"]["l19"] >= 1 and data.class_counts["validation"]["l19"] >= 1
    kept = [e for name in ("train", "validation", "test") for e in read_examples(getattr(data, f"{name}_path"))]
    task = [e for e in kept if e.origin == "task"]  # replay rows (general data) carry no labels
    bad = [e for e in task if e.labels is None or e.answer != answer_for(e.labels, config.data.labels)]
    assert not bad, bad[:2]


def _memorised(tmp_path, tiny_model):
    """Four messages with two, one, none and three labels, trained on until each answer is the greedy reply."""
    from tests.test_training import min_answer_probability

    sets = [["urgent", "technical"], ["billing"], [], ["billing", "technical", "general"]]
    texts = ["site down now", "refund my card", "office hours?", "app crashes and I want a refund"]
    examples = [make_example([{"role": "user", "content": t}, {"role": "assistant", "content": answer_for(s, LABELS)}],
                             f"m:{i}", labels=s) for i, (t, s) in enumerate(zip(texts, sets, strict=True))]  # fmt: skip
    train = write_examples(examples * 4, tmp_path / "train.jsonl")
    from tunesmith.config.schema import TrainingConfig

    config = TrainingConfig(max_steps=80, learning_rate=1e-2, batch_size=4, warmup_ratio=0.0, lr_scheduler="cosine",
                            eval_steps=40, early_stopping_patience=None)  # fmt: skip
    trained = train_files(str(tiny_model), str(train), str(train), "Tag.", config, "lora", CPU32, tmp_path / "out",
                          manifest={"labels": LABELS, "task_type": "multilabel"})  # fmt: skip
    model, tokenizer = load_trained(str(tiny_model), "lora", trained.output_dir, CPU32)
    # Every answer above probability 0.5 is the greedy reply on any CPU (see min_answer_probability).
    assert min_answer_probability(model, tokenizer, examples, "Tag.", [e.answer for e in examples]) > 0.5
    return examples, trained.output_dir, model, tokenizer


def test_a_multilabel_model_learns_its_sets_reloads_and_serves_labels_with_probabilities(tmp_path, tiny_model):
    examples, folder, model, tokenizer = _memorised(tmp_path, tiny_model)
    scored = score_label_sets(model, tokenizer, [prompt_messages(e, "Tag.") for e in examples], examples, LABELS, 2)
    assert scored.metrics["samples_f1"] == 1.0 and scored.metrics["micro_f1"] == 1.0, scored.predictions
    assert scored.metrics["invalid_label_rate"] == 0.0 and scored.per_example == [1.0] * 4
    rows = Predictor(folder, precision="float32").predict(list(read_requests([e.prompt_text for e in examples])))
    served = [[x["label"] for x in r["labels"]] for r in rows]
    # The property, not the strings: each reply is its own label set as the trained answer spells it, and the
    # sets are the memorised ones (every answer above probability 0.5 is the greedy reply, so a mean F1 of 0.75
    # leaves room for one example's set to differ on a CPU whose rounding tips a near tie).
    assert all(r["output"] == answer_for(labels, LABELS) for r, labels in zip(rows, served, strict=True))
    assert sum(sample_f1(e.labels, labels) for e, labels in zip(examples, served, strict=True)) / 4 >= 0.75
    # a right label is the greedy continuation where it stands, so its probability is above one half
    right = [
        x["probability"] for r, e in zip(rows, examples, strict=True) for x in r["labels"] if x["label"] in e.labels
    ]
    assert right and all(0.5 < p <= 1.0 for p in right)
    result = CliRunner().invoke(app, ["predict", "--model", folder], input="refund my card\n")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert "billing" in [x["label"] for x in answer["labels"]]


def test_classification_rows_with_a_label_list_point_to_the_multilabel_format(tmp_path):
    rows = [{"text": "how long for a new pin?", "labels": ["how_long", "pin"], "domain": "banking"}] * 2
    result = load_records(write_jsonl(tmp_path / "nlu.jsonl", rows), "classification", LABELS)
    assert [r.kind for r in result.rejected] == ["unsupported_shape"] * 2
    assert "data.format: multilabel" in result.rejected[0].reason


@pytest.mark.skipif(not (SHARED_DATA / "nlupp").is_dir(), reason="needs ../shared/data")
def test_check_accepts_nlupp_as_multilabel_data(tmp_path, tiny_model):
    rows = [json.loads(line) for line in (SHARED_DATA / "nlupp" / "data.jsonl").read_text().splitlines()]
    labels = sorted({label for r in rows for label in r["labels"]})
    config = tmp_path / "nlupp.yaml"
    config.write_text(
        f"name: nlupp\nmodel: {tiny_model}\noutput_dir: {tmp_path / 'runs'}\n"
        f"data:\n  path: {SHARED_DATA / 'nlupp' / 'data.jsonl'}\n  format: multilabel\n  labels: {json.dumps(labels)}\n"
        ""
    )
    result = CliRunner().invoke(app, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert "2467" in result.output.replace(",", "")
