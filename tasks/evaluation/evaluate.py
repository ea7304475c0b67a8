"""The held-out evaluation stage: the same test split scored for the base and the fine-tuned model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.curation.records import Example, read_examples
from tasks.evaluation.metrics import classification_metrics, generation_metrics
from tasks.evaluation.scoring import generate, label_logprobs
from tasks.prompts import prompt_messages


@dataclass
class Scored:
    metrics: dict[str, float]
    predictions: list[str]


@dataclass
class EvaluationResult:
    task_type: str
    n_examples: int
    base: dict[str, float]
    finetuned: dict[str, float]
    predictions_path: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score_model(
    model, tokenizer, examples: list[Example], system: str, labels: list[str] | None, batch_size: int
) -> Scored:
    """Predict every example from its zero-shot prompt and compute the task's metrics."""
    return score_prompts(model, tokenizer, [prompt_messages(e, system) for e in examples], examples, labels, batch_size)


def score_prompts(
    model,
    tokenizer,
    prompts: list[list[dict[str, str]]],
    examples: list[Example],
    labels: list[str] | None,
    batch_size: int,
) -> Scored:
    """Predict from the given prompts (one per example) and compute the task's metrics."""
    references = [e.answer for e in examples]
    if labels:
        scores = label_logprobs(model, tokenizer, prompts, labels, batch_size)
        predictions = [labels[i] for i in scores.argmax(axis=1)]
        return Scored(classification_metrics(references, predictions, labels), predictions)
    max_new = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references) + 8
    predictions = generate(model, tokenizer, prompts, max_new_tokens=max_new, batch_size=batch_size)
    return Scored(generation_metrics(references, predictions), predictions)


def load_test_examples(test_path: str, max_examples: int | None) -> list[Example]:
    """The test split's task examples (replay data is never scored), optionally the first N."""
    examples = [e for e in read_examples(Path(test_path)) if e.origin == "task"]
    return examples[:max_examples] if max_examples else examples


def prediction_rows(examples: list[Example], base: Scored, tuned: Scored) -> list[dict[str, Any]]:
    """A table of test inputs with the reference, base and fine-tuned outputs, errors first."""
    rows = [
        {
            "id": e.id,
            "input": e.prompt_text,
            "reference": e.answer,
            "base": b,
            "finetuned": t,
            "finetuned_correct": t.strip().lower() == e.answer.strip().lower(),
        }
        for e, b, t in zip(examples, base.predictions, tuned.predictions, strict=True)
    ]
    rows.sort(key=lambda r: r["finetuned_correct"])
    return rows
