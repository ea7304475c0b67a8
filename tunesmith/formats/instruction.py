"""Instruction following: {"instruction", "input" (optional), "output", "category" (optional)}."""

from __future__ import annotations

from typing import Any

from tunesmith.formats.base import Parsed, TaskFormat, category, exchange, text_field


def parse(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    instruction = text_field(row, "instruction")
    extra_input = text_field(row, "input", required=False)
    output = text_field(row, "output")
    prompt = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    return Parsed(exchange(prompt, output), category=category(row))


FORMAT = TaskFormat(
    name="instruction",
    fields=frozenset({"instruction", "input", "output", "category"}),
    parse=parse,
    baseline_system="You are a helpful assistant. Follow the instruction.",
    starter_row={"instruction": "Summarise the ticket", "input": "My card was charged twice ...", "output": "..."},
)
