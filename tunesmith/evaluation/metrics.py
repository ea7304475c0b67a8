"""Task metrics computed from predictions and references (no model involved)."""

from __future__ import annotations

import json
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(references: list[str], predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class precision and recall over the configured label set."""
    precision, recall, _, _ = precision_recall_fscore_support(references, predictions, labels=labels, zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(references, predictions)),
        "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
    }
    for label, p, r in zip(labels, precision, recall, strict=True):
        metrics[f"precision_{label}"] = float(p)
        metrics[f"recall_{label}"] = float(r)
    return metrics


def per_class_rows(labels: list[str], base: dict[str, float], tuned: dict[str, float]) -> list[dict[str, object]]:
    """Per-class precision and recall, base against fine-tuned, one row per label under its own name."""
    return [
        {"label": label, **{f"{who}_{kind}": scores.get(f"{kind}_{label}") for who, scores in
                            (("base", base), ("finetuned", tuned)) for kind in ("precision", "recall")}}
        for label in labels
    ]  # fmt: skip


def confusion(references: list[str], predictions: list[str], labels: list[str]) -> list[list[int]]:
    """Rows: true label; columns: predicted label; in the order of `labels`."""
    return confusion_matrix(references, predictions, labels=labels).tolist()


def generation_metrics(
    references: list[str], predictions: list[str], rouge: list[float] | None = None
) -> dict[str, float]:
    """Exact match (whitespace/case-normalized), mean ROUGE-L F1 and corpus BLEU (sacrebleu, 0-100)."""
    import sacrebleu

    pairs = list(zip(references, predictions, strict=True))
    rouge = rouge if rouge is not None else rouge_l(references, predictions)  # `rouge`: per example, if computed
    exact = [" ".join(ref.lower().split()) == " ".join(pred.lower().split()) for ref, pred in pairs]
    n = max(len(references), 1)
    bleu = sacrebleu.corpus_bleu(predictions, [references]).score if references else 0.0
    low, high = mean_interval(rouge)
    return {"exact_match": sum(exact) / n, "rougeL": sum(rouge) / n, "rougeL_ci_low": low, "rougeL_ci_high": high,
            "bleu": float(bleu)}  # fmt: skip


def rouge_l(references: list[str], predictions: list[str]) -> list[float]:
    """ROUGE-L F1 of each prediction against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(ref, pred)["rougeL"].fmeasure for ref, pred in zip(references, predictions, strict=True)]


def mean_interval(scores: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """The bootstrap interval (BCa, 2,000 resamples, fixed seed) of the mean of per-example scores: what a mean
    such as ROUGE-L has instead of a proportion's Wilson interval. NaN for fewer than two scores."""
    if len(scores) < 2:
        return float("nan"), float("nan")
    if min(scores) == max(scores):
        return float(scores[0]), float(scores[0])  # BCa is undefined on constant data; the interval is the point
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap((np.asarray(scores, dtype=float),), np.mean, n_resamples=2000, confidence_level=confidence,
                       method="BCa", random_state=0)  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _parse_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def field_scores(references: list[str], predictions: list[str]) -> list[float]:
    """Per example, the share of the reference's top-level fields the prediction reproduces exactly (0 for output
    that is not a JSON object)."""
    scores = []
    for reference, prediction in zip(references, predictions, strict=True):
        expected, produced = _parse_object(reference) or {}, _parse_object(prediction) or {}
        right = sum(1 for key, value in expected.items() if key in produced and produced[key] == value)
        scores.append(right / len(expected) if expected else float(bool(produced)))
    return scores


# Scored right or wrong per example: a label, or which reply of a preference pair the model finds more likely.
BINARY_KINDS = ("classification", "preference")


def per_example_scores(kind: str, references: list[str], predictions: list[str]) -> list[float]:
    """Each test example's share of the task's primary metric, for paired comparisons of two models on the same
    examples: right (1) or wrong (0) for classification and preferences, ROUGE-L for text, field accuracy for
    JSON."""
    if kind in BINARY_KINDS:
        return [float(ref == pred) for ref, pred in zip(references, predictions, strict=True)]
    if kind == "json":
        return field_scores(references, predictions)
    return rouge_l(references, predictions)


def score_interval(kind: str, per_example: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """The interval of one model's score: Wilson's for a share right (classification), the bootstrap of the mean
    for ROUGE-L and field accuracy."""
    if not per_example:
        return float("nan"), float("nan")
    if kind in BINARY_KINDS:
        from scipy.stats import binomtest

        interval = binomtest(int(sum(per_example)), len(per_example)).proportion_ci(confidence, method="wilson")
        return float(interval.low), float(interval.high)
    return mean_interval(per_example, confidence)


def paired_change(kind: str, reference: list[float], new: list[float], confidence: float = 0.95):
    """new - reference on the same test examples, with its interval: McNemar's test and Tango's interval for
    right/wrong outcomes (classification), a paired bootstrap for ROUGE-L and field accuracy."""
    from tunesmith.statistics.paired import paired_proportions, paired_scores

    if kind in BINARY_KINDS:
        return paired_proportions([r > 0.5 for r in reference], [x > 0.5 for x in new], confidence)
    return paired_scores(reference, new, confidence)


def json_metrics(
    references: list[str], predictions: list[str], schema: dict[str, Any] | None = None
) -> dict[str, float]:
    """Structured output: share of predictions that are valid JSON objects, that validate against the schema,
    and share of the reference's top-level fields whose value the prediction reproduces exactly."""
    import jsonschema

    valid = schema_valid = fields = correct = 0
    for reference, prediction in zip(references, predictions, strict=True):
        expected, produced = _parse_object(reference) or {}, _parse_object(prediction)
        fields += len(expected)
        if produced is None:
            continue
        valid += 1
        if schema is None or jsonschema.Draft202012Validator(schema).is_valid(produced):
            schema_valid += 1
        correct += sum(1 for key, value in expected.items() if key in produced and produced[key] == value)
    n = max(len(references), 1)
    return {
        "valid_json_rate": valid / n,
        "schema_valid_rate": schema_valid / n,
        "field_accuracy": correct / max(fields, 1),
    }
