"""Task metrics computed from predictions and references (no model involved)."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score


def primary_metric(task_type: str) -> str:
    """The number a run is judged by: accuracy for classification, ROUGE-L for generation."""
    return "accuracy" if task_type == "classification" else "rougeL"


def classification_metrics(references: list[str], predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the configured label set."""
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
    }


def generation_metrics(references: list[str], predictions: list[str]) -> dict[str, float]:
    """Exact match (after whitespace/case normalization) and mean ROUGE-L F1."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = list(zip(references, predictions, strict=True))
    rouge = [scorer.score(ref, pred)["rougeL"].fmeasure for ref, pred in pairs]
    exact = [" ".join(ref.lower().split()) == " ".join(pred.lower().split()) for ref, pred in pairs]
    n = max(len(references), 1)
    return {"exact_match": sum(exact) / n, "rougeL": sum(rouge) / n}
