"""The test split as one object, and the one function that measures a model on it: the pipeline's evaluation,
the comparison's per-method assessment and the promotion gate's re-scoring of the champion all call it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.evaluation.evaluate import answer_perplexity, load_test_examples, score_with_template, task_type
from tunesmith.prompts import PromptTemplate, training_prompt, untrained_prompt
from tunesmith.records import CuratedData, Example, Scored


@dataclass
class TestSet:
    """The test examples and how they are scored, fixed once for every model measured on them."""

    __test__ = False  # not a pytest test class

    examples: list[Example]
    kind: str  # classification | json | generation
    schema: dict[str, Any] | None
    system: str  # the system prompt fine-tuned models were trained with
    labels: list[str] | None
    untrained_system: str = ""  # the zero-shot prompt of an untrained model, when it has no best prompt


def load_test_set(config: RunConfig, data: CuratedData) -> TestSet:
    return _scored_split(config, data, data.test_path, config.evaluation.max_examples)


def load_split_file(config: RunConfig, data: CuratedData, path: str) -> TestSet:
    """Another split file (a champion's test split) scored as this run's test split is."""
    return _scored_split(config, data, path, config.evaluation.max_examples)


def load_validation_set(config: RunConfig, data: CuratedData, max_examples: int | None) -> TestSet:
    """The validation split, scored as the test split is: what a hyperparameter search judges trials on, so that
    the test split stays unseen until the final evaluation."""
    return _scored_split(config, data, data.validation_path, max_examples)


def _scored_split(config: RunConfig, data: CuratedData, path: str, max_examples: int | None) -> TestSet:
    settings = config.evaluation
    examples = load_test_examples(path, max_examples)
    kind = settings.task if settings.task != "auto" else task_type(data.labels, examples)
    schema = json.loads(Path(settings.json_schema).read_text()) if settings.json_schema else None
    return TestSet(examples, kind, schema, training_prompt(config), data.labels, untrained_prompt(config))


def score_test_set(
    model, tokenizer, tests: TestSet, batch_size: int, template: PromptTemplate | None = None, retriever=None,
    perplexity: bool = True,
) -> Scored:  # fmt: skip
    """Task metrics (and the reference answers' perplexity under the zero-shot prompt) of one model.

    `template` defaults to the zero-shot system prompt; the base model is scored with its best prompt instead,
    a registered model with the prompt it was trained on."""
    scored = score_with_template(
        model, tokenizer, tests.examples, template or PromptTemplate(tests.system), tests.labels, batch_size,
        retriever, tests.kind, tests.schema,
    )  # fmt: skip
    if perplexity:
        scored.metrics["perplexity"] = answer_perplexity(model, tokenizer, tests.examples, tests.system, batch_size)
    return scored
