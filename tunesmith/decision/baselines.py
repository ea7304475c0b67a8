"""Measured baselines with the base model: zero-shot, few-shot and (with a corpus) retrieval-augmented."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tunesmith.console import progress
from tunesmith.evaluation.evaluate import score_prompts
from tunesmith.evaluation.metrics import paired_change, score_interval
from tunesmith.prompts import PromptTemplate
from tunesmith.records import Example, change_text, primary_metric
from tunesmith.statistics.paired import PairedDifference


@dataclass
class Baseline:
    name: str
    metric: str
    score: float
    prompt_tokens: float  # mean tokens per request
    latency_s: float  # per example
    n: int
    template: dict[str, Any]
    low: float = float("nan")  # the score's 95% interval on these n examples
    high: float = float("nan")
    per_example: list[float] = field(default_factory=list)  # the score of each example, for paired comparisons

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def few_shot_examples(train: list[Example], k: int, seed: int) -> list[Example]:
    """k examples, taken round-robin across labels (or categories) so every class is shown."""
    rng = random.Random(seed)
    groups: dict[str | None, list[Example]] = {}
    for example in train:
        if example.origin == "task":
            groups.setdefault(example.group, []).append(example)
    for group in groups.values():
        rng.shuffle(group)
    chosen: list[Example] = []
    order = sorted(groups, key=str)
    while len(chosen) < k and any(groups.values()):
        for key in order:
            if groups[key] and len(chosen) < k:
                chosen.append(groups[key].pop())
    return chosen


def measure(
    name: str,
    template: PromptTemplate,
    model,
    tokenizer,
    examples: list[Example],
    labels: list[str] | None,
    task_type: str,
    batch_size: int,
    retriever=None,
) -> Baseline:
    """Score the template on the examples; time and prompt length per request are measured alongside."""
    start = time.perf_counter()
    prompts = [
        template.messages(e, [p.text for p in retriever.top(e.prompt_text, template.top_k)] if retriever else None)
        for e in examples
    ]
    with progress.bar(f"{name.replace('_', '-')} prompt", len(examples), "examples"):
        scored = score_prompts(model, tokenizer, prompts, examples, labels, batch_size)
    elapsed = time.perf_counter() - start
    tokens = [
        len(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        for p in prompts
    ]
    metric = primary_metric(task_type)
    low, high = score_interval(task_type, scored.per_example)
    return Baseline(
        name=name,
        metric=metric,
        score=scored.metrics[metric],
        prompt_tokens=sum(tokens) / max(len(tokens), 1),
        latency_s=elapsed / max(len(examples), 1),
        n=len(examples),
        template=template.to_json(),
        low=low,
        high=high,
        per_example=scored.per_example,
    )


def measure_baselines(
    model,
    tokenizer,
    train: list[Example],
    validation: list[Example],
    system: str,
    labels: list[str] | None,
    task_type: str,
    few_shot_k: int,
    batch_size: int,
    seed: int,
    retrievers: list | None = None,
    top_k: int = 3,
) -> list[Baseline]:
    """Zero-shot and few-shot prompting, plus RAG with each retriever given, on the validation examples."""
    shots = [[m for m in e.messages if m["role"] != "system"] for e in few_shot_examples(train, few_shot_k, seed)]
    args = (model, tokenizer, validation, labels, task_type, batch_size)
    results = [
        measure("zero_shot", PromptTemplate(system), *args),
        measure("few_shot", PromptTemplate(system, shots), *args),
    ]
    for retriever in retrievers or []:
        template = PromptTemplate(system, retriever=retriever.name, top_k=top_k)
        results.append(measure(f"rag_{retriever.name}", template, *args, retriever=retriever))
    return results


def paired_over(new: Baseline, reference: Baseline, task_type: str) -> tuple[PairedDifference, str]:
    """`new` - `reference` on the same validation examples (McNemar and Tango's interval for right/wrong scores, a
    paired bootstrap for ROUGE-L), and the difference as text: "+20.0 points [+9.5, +34.8] (95%) on 40 validation
    examples"."""
    change = paired_change(task_type, reference.per_example, new.per_example)
    return change, f"{change_text(change.to_json())} on {change.n} validation examples"


def compare_best_prompts(baselines: list[Baseline], task_type: str) -> str:
    """Whether the best baseline beats the runner-up on the same validation examples, or the two cannot be told
    apart (then a cheaper prompt does as well)."""
    ranked = sorted((b for b in baselines if b.per_example), key=lambda b: -b.score)
    if len(ranked) < 2:
        return ""
    best, second = ranked[:2]
    change, shown = paired_over(best, second, task_type)
    names = f"{best.name.replace('_', '-')} over {second.name.replace('_', '-')}"
    if change.direction > 0:
        return f"{names}: {shown}, a real difference"
    return f"{names}: {shown}: the two cannot be told apart"
