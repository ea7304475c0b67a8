"""The chat messages a model sees for an example: the configured system prompt, then the conversation."""

from __future__ import annotations

from tasks.curation.records import Example


def system_prompt(template: str, labels: list[str] | None) -> str:
    """The system prompt with {labels} filled in (a comma-separated list) when the template uses it."""
    return template.replace("{labels}", ", ".join(labels or []))


def prompt_messages(example: Example, system: str) -> list[dict[str, str]]:
    """System prompt plus the conversation up to (not including) the final assistant answer."""
    head = [] if example.messages[0]["role"] == "system" or not system else [{"role": "system", "content": system}]
    return head + example.messages[:-1]


def full_messages(example: Example, system: str) -> list[dict[str, str]]:
    """System prompt plus the whole conversation, answer included: what training sees."""
    return prompt_messages(example, system) + example.messages[-1:]
