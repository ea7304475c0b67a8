"""The chat messages a model sees: the system prompt, optional few-shot turns, optional retrieved passages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tunesmith.formats import get_format
from tunesmith.records import Example

if TYPE_CHECKING:
    from tunesmith.config import RunConfig


def system_prompt(template: str, labels: list[str] | None) -> str:
    """The system prompt with {labels} filled in (a comma-separated list) when the template uses it."""
    return template.replace("{labels}", ", ".join(labels or []))


def baseline_system(system: str | None, data_format: str, labels: list[str] | None) -> str:
    """The prompt an untrained model (baselines, the base model in evaluation) is asked with."""
    return system_prompt(get_format(data_format).baseline_system if system is None else system, labels)


def trained_system(system: str | None, trained: str | None, data_format: str, labels: list[str] | None) -> str:
    """The prompt fine-tuning trains with and the fine-tuned model is asked with. A system prompt the user
    wrote is kept for training too (label list included) unless prompt.trained_system says otherwise."""
    if trained is not None:
        return system_prompt(trained, labels)
    return system_prompt(get_format(data_format).training_system if system is None else system, labels)


def untrained_prompt(config: RunConfig) -> str:
    return baseline_system(config.prompt.system, config.data.format, config.data.labels)


def training_prompt(config: RunConfig) -> str:
    return trained_system(config.prompt.system, config.prompt.trained_system, config.data.format, config.data.labels)


def prompt_messages(example: Example, system: str) -> list[dict[str, str]]:
    """System prompt plus the conversation up to (not including) the final assistant answer. Replay examples are
    general-domain data trained as what they are: the task's system prompt (a classifier's list of labels, say)
    is not theirs."""
    has_system = example.messages[0]["role"] == "system"
    head = [] if has_system or not system or example.origin == "replay" else [{"role": "system", "content": system}]
    return head + example.messages[:-1]


def full_messages(example: Example, system: str) -> list[dict[str, str]]:
    """System prompt plus the whole conversation, answer included: what training sees."""
    return prompt_messages(example, system) + example.messages[-1:]


def rejected_messages(example: Example, system: str) -> list[dict[str, str]]:
    """A preference pair's other side: the same prompt answered with the reply people liked less."""
    return prompt_messages(example, system) + [{"role": "assistant", "content": example.rejected or ""}]


@dataclass
class PromptTemplate:
    """A reusable prompt: the system prompt, worked examples as earlier turns, and retrieval settings."""

    system: str
    shots: list[list[dict[str, str]]] = field(default_factory=list)  # each a user/assistant exchange
    retriever: str | None = None  # "bm25" or "embedding" when passages are retrieved into the prompt
    top_k: int = 0

    def messages(self, example: Example, passages: list[str] | None = None) -> list[dict[str, str]]:
        conversation = [dict(m) for m in prompt_messages(example, "")]
        if conversation and conversation[0]["role"] == "system":
            conversation = conversation[1:]
        if passages:
            context = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(passages, start=1))
            last = conversation[-1]
            last["content"] = f"Use these passages if they help:\n\n{context}\n\nQuestion: {last['content']}"
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [m for shot in self.shots for m in shot] + conversation

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PromptTemplate:
        return cls(**data)
