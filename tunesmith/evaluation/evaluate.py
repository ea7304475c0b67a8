"""Held-out evaluation: the test split scored for the base model (with its best prompt) and the fine-tuned one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.curation.records import read_examples
from tunesmith.evaluation.metrics import (
    classification_metrics,
    generation_metrics,
    json_metrics,
    per_example_scores,
    rouge_l,
)
from tunesmith.evaluation.scoring import generate, label_logprobs, perplexity
from tunesmith.prompts import PromptTemplate, full_messages, prompt_messages
from tunesmith.records import Example, Scored

# Labels scored in full per example before the first-token bound decides whether more are needed: the right
# label is almost always among a classifier's top few first tokens.
CANDIDATES = 4


def task_type(labels: list[str] | None, examples: list[Example]) -> str:
    """preference for pairs; multilabel for label sets; classification with a label set; json when every
    reference answer is a JSON object; else generation."""
    if examples and examples[0].rejected is not None:
        return "preference"
    if examples and examples[0].labels is not None:
        return "multilabel"
    if labels:
        return "classification"
    answers = [e.answer for e in examples]
    parsed = []
    for answer in answers:
        try:
            parsed.append(isinstance(json.loads(answer), dict))
        except json.JSONDecodeError:
            parsed.append(False)
    return "json" if answers and all(parsed) else "generation"


def score_prompts(
    model,
    tokenizer,
    prompts: list[list[dict[str, str]]],
    examples: list[Example],
    labels: list[str] | None,
    batch_size: int,
    kind: str | None = None,
    schema: dict[str, Any] | None = None,
) -> Scored:
    """Predict from the given prompts (one per example) and compute the task's metrics."""
    kind = kind or task_type(labels, examples)
    references = [e.answer for e in examples]
    if kind == "preference":
        from tunesmith.evaluation.preference import score_preferences

        return score_preferences(model, tokenizer, prompts, examples)
    if kind == "multilabel":
        from tunesmith.evaluation.multilabel import score_label_sets

        return score_label_sets(model, tokenizer, prompts, examples, labels, batch_size)
    if kind == "classification":
        scores = label_logprobs(model, tokenizer, prompts, labels, batch_size, candidates=CANDIDATES)
        predictions = [labels[i] for i in scores.argmax(axis=1)]
        metrics = classification_metrics(references, predictions, labels)
        return Scored(metrics, predictions, per_example_scores(kind, references, predictions))
    max_new = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references) + 8
    predictions = generate(model, tokenizer, prompts, max_new_tokens=max_new, batch_size=batch_size)
    rouge = rouge_l(references, predictions)
    metrics = generation_metrics(references, predictions, rouge)
    if kind == "json":
        metrics |= json_metrics(references, predictions, schema)
        return Scored(metrics, predictions, per_example_scores(kind, references, predictions))
    return Scored(metrics, predictions, rouge)


def score_model(
    model, tokenizer, examples: list[Example], system: str, labels: list[str] | None, batch_size: int
) -> Scored:
    """Predict every example from its zero-shot prompt and compute the task's metrics."""
    return score_prompts(model, tokenizer, [prompt_messages(e, system) for e in examples], examples, labels, batch_size)


def score_with_template(
    model, tokenizer, examples: list[Example], template: PromptTemplate, labels, batch_size, retriever=None,
    kind: str | None = None, schema=None,
) -> Scored:  # fmt: skip
    prompts = [
        template.messages(e, [p.text for p in retriever.top(e.prompt_text, template.top_k)] if retriever else None)
        for e in examples
    ]
    return score_prompts(model, tokenizer, prompts, examples, labels, batch_size, kind, schema)


def answer_perplexity(model, tokenizer, examples: list[Example], system: str, batch_size: int) -> float:
    return perplexity(model, tokenizer, [full_messages(e, system) for e in examples], batch_size)


def load_test_examples(test_path: str, max_examples: int | None) -> list[Example]:
    """The test split's task examples (replay data is never scored), optionally the first N."""
    examples = [e for e in read_examples(Path(test_path)) if e.origin == "task"]
    return examples[:max_examples] if max_examples else examples


def prediction_rows(examples: list[Example], base: Scored, tuned: Scored) -> list[dict[str, Any]]:
    """A table of test inputs with the reference, base and fine-tuned outputs, fine-tuned errors first."""

    def same(a: str, b: str) -> bool:
        return " ".join(a.lower().split()) == " ".join(b.lower().split())

    rows = [
        {
            "id": e.id,
            "input": e.prompt_text,
            "reference": e.answer,
            "base": b,
            "finetuned": t,
            "base_correct": same(b, e.answer),
            "finetuned_correct": same(t, e.answer),
        }
        for e, b, t in zip(examples, base.predictions, tuned.predictions, strict=True)
    ]
    rows.sort(key=lambda r: (r["finetuned_correct"], r["base_correct"]))
    return rows
