"""Prompt and completion: {"prompt", "completion", "category" (optional)}, no system prompt by default."""

from __future__ import annotations

from typing import Any

from tunesmith.formats.base import Parsed, TaskFormat, category, exchange, text_field


def parse(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    return Parsed(exchange(text_field(row, "prompt"), text_field(row, "completion")), category=category(row))


FORMAT = TaskFormat(
    name="completion",
    fields=frozenset({"prompt", "completion", "category"}),
    parse=parse,
    baseline_system="",
    starter_row={"prompt": "Ticket: My card was charged twice\nCategory:", "completion": " billing"},
)
