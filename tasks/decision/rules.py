"""The decision stage: prompting or fine-tuning, from the curated data, with every rule's evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tasks.config.schema import DecisionConfig

Decision = Literal["prompting", "few_shot_prompting", "finetune"]


@dataclass
class Rule:
    name: str
    fired: bool
    evidence: str


@dataclass
class DecisionRecord:
    decision: Decision
    method: str | None
    rules: list[Rule] = field(default_factory=list)
    overridden: bool = False
    would_have_chosen: Decision | None = None

    @property
    def stop(self) -> bool:
        """True when the pipeline ends here, without training."""
        return self.decision != "finetune"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"stop": self.stop}


def decide(n_train: int, task_type: str, config: DecisionConfig, method: str) -> DecisionRecord:
    """Apply the data-size rules in order; the first that fires decides. A forced decision wins but is recorded."""
    rules = [
        Rule(
            "too_few_examples_for_anything_but_prompting",
            n_train < config.min_examples_prompting,
            f"{n_train} training examples; below {config.min_examples_prompting}, write a prompt, not a dataset",
        ),
        Rule(
            "too_few_examples_to_fine_tune",
            config.min_examples_prompting <= n_train < config.min_examples_finetune,
            f"{n_train} training examples; below {config.min_examples_finetune}, use them as few-shot examples "
            "instead of fine-tuning",
        ),
        Rule(
            "enough_examples_to_fine_tune",
            n_train >= config.min_examples_finetune,
            f"{n_train} training examples; {config.min_examples_finetune} or more are enough to fine-tune "
            f"for a {task_type} task",
        ),
    ]
    chosen: Decision = "prompting" if rules[0].fired else "few_shot_prompting" if rules[1].fired else "finetune"
    record = DecisionRecord(decision=chosen, method=method if chosen == "finetune" else None, rules=rules)
    if config.force is not None:
        forced: Decision = "finetune" if config.force == "finetune" else "prompting"
        if forced != chosen:
            record.would_have_chosen = chosen
            record.overridden = True
            record.decision = forced
            record.method = method if forced == "finetune" else None
    return record
