"""Multi-label classification scored from generated answers: each answer read back into a label set
(formats.multilabel.parse_answer), then the set metrics over the configured labels."""

from __future__ import annotations

import math

import numpy as np

from tunesmith.formats.multilabel import answer_for, parse_answer
from tunesmith.records import Example, Scored


def sample_f1(reference: list[str], predicted: list[str]) -> float:
    """One example's F1 between its label sets: 2|R∩P| / (|R| + |P|), 1 when both are empty."""
    if not reference and not predicted:
        return 1.0
    return 2 * len(set(reference) & set(predicted)) / (len(reference) + len(predicted))


def multilabel_metrics(references: list[list[str]], predicted: list[list[str]], labels: list[str]) -> dict[str, float]:
    """Micro and macro F1 over the label set, the mean per-example F1 (the primary metric), subset accuracy (the
    whole set right), Hamming loss (the share of example-label decisions wrong) and per-label precision and recall."""
    from sklearn.metrics import f1_score, hamming_loss, precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    binarize = MultiLabelBinarizer(classes=labels)
    truth, guess = binarize.fit_transform(references), binarize.transform(predicted)
    precision, recall, _, _ = precision_recall_fscore_support(truth, guess, zero_division=0)
    metrics = {
        "samples_f1": float(np.mean([sample_f1(r, p) for r, p in zip(references, predicted, strict=True)])),
        "micro_f1": float(f1_score(truth, guess, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, guess, average="macro", zero_division=0)),
        "subset_accuracy": float(np.mean([set(r) == set(p) for r, p in zip(references, predicted, strict=True)])),
        "hamming_loss": float(hamming_loss(truth, guess)),
    }
    for label, p, r in zip(labels, precision, recall, strict=True):
        metrics[f"precision_{label}"] = float(p)
        metrics[f"recall_{label}"] = float(r)
    return metrics


def score_label_sets(model, tokenizer, prompts: list[list[dict[str, str]]], examples: list[Example],
                     labels: list[str], batch_size: int) -> Scored:  # fmt: skip
    """Generate each example's answer, read it back into a label set, and score the sets; each prediction is
    the set as the trained answer spells it. `invalid_label_rate`: the share of named labels that are not in the
    label set (dropped from the set), what constrained decoding would have prevented."""
    from tunesmith.evaluation.scoring import generate

    longest = max(len(tokenizer(answer_for(labels, labels), add_special_tokens=False)["input_ids"]), 8)
    widest = max(len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples)
    replies = generate(model, tokenizer, prompts, max_new_tokens=min(longest, 2 * widest + 8), batch_size=batch_size)
    parsed = [parse_answer(reply, labels) for reply in replies]
    predicted = [known for known, _ in parsed]
    references = [e.labels or [] for e in examples]
    metrics = multilabel_metrics(references, predicted, labels)
    named = sum(len(known) + len(unknown) for known, unknown in parsed)
    metrics["invalid_label_rate"] = sum(len(unknown) for _, unknown in parsed) / named if named else 0.0
    per_example = [sample_f1(r, p) for r, p in zip(references, predicted, strict=True)]
    return Scored(metrics, [answer_for(p, labels) for p in predicted], per_example)


def label_probabilities(model, tokenizer, prompts: list[list[dict[str, str]]], answers: list[list[str]],
                        labels: list[str]) -> list[list[dict[str, float | str]]]:  # fmt: skip
    """Each predicted label with its probability: the chance the model writes that label where it stands in the
    answer, given the prompt and the labels before it (teacher-forced over the answer as the model spells it)."""
    import torch

    from tunesmith.evaluation.scoring import _chat_ids

    out = []
    for messages, chosen in zip(prompts, answers, strict=True):
        prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
        spans, ids, text = [], list(prompt_ids), ""
        for i, label in enumerate(chosen):
            piece = (", " if i else "") + label
            before = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
            text += piece
            spans.append((before, len(tokenizer(text, add_special_tokens=False)["input_ids"])))
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if not chosen:
            out.append([])
            continue
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        start = len(prompt_ids)
        row = []
        for label, (a, b) in zip(chosen, spans, strict=True):
            total = sum(float(logprobs[start + j - 1, ids[start + j]]) for j in range(a, b))
            row.append({"label": label, "probability": round(math.exp(total), 6)})
        out.append(row)
    return out
