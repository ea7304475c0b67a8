"""Row parsers: one per input format, each turning a JSON object into chat messages (+ label)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RowError(ValueError):
    """A row that cannot be used, naming the field at fault."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


Parsed = tuple[list[dict[str, str]], str | None]


def _text(row: dict[str, Any], name: str, required: bool = True) -> str:
    if name not in row:
        if required:
            raise RowError(name, f'missing field "{name}"')
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise RowError(name, f'field "{name}" must be a string, got {type(value).__name__} {value!r}')
    if required and not value.strip():
        raise RowError(name, f'field "{name}" is empty')
    return value


def _no_extra(row: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(row) - allowed)
    if extra:
        raise RowError(
            extra[0], f"unexpected field(s): {', '.join(extra)} (expected only: {', '.join(sorted(allowed))})"
        )


def parse_classification(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    _no_extra(row, {"text", "label"})
    text = _text(row, "text")
    label = _text(row, "label")
    if labels is not None and label not in labels:
        raise RowError("label", f'field "label" is "{label}", not one of: {", ".join(labels)}')
    return [{"role": "user", "content": text}, {"role": "assistant", "content": label}], label


def parse_instruction(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    _no_extra(row, {"instruction", "input", "output"})
    instruction = _text(row, "instruction")
    extra_input = _text(row, "input", required=False)
    output = _text(row, "output")
    prompt = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}], None


def parse_completion(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    _no_extra(row, {"prompt", "completion"})
    prompt = _text(row, "prompt")
    completion = _text(row, "completion")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], None


def parse_chat(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    _no_extra(row, {"messages"})
    messages = row.get("messages")
    if messages is None:
        raise RowError("messages", 'missing field "messages"')
    if not isinstance(messages, list) or not messages:
        raise RowError("messages", 'field "messages" must be a non-empty list')
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise RowError(where, f"{where} must be an object with only role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise RowError(f"{where}.role", f"{where}.role is {role!r}, not one of: system, user, assistant")
        if not isinstance(content, str) or not content.strip():
            raise RowError(f"{where}.content", f"{where}.content must be non-empty text")
        clean.append({"role": role, "content": content})
    _check_role_order([m["role"] for m in clean])
    return clean, None


def _check_role_order(roles: list[str]) -> None:
    turns = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(turns) // 2 + 1)
    if not turns or turns != expected[: len(turns)] or turns[-1] != "assistant":
        raise RowError(
            "messages",
            "invalid role order "
            f"{' > '.join(roles)}: expected an optional system message, then user/assistant turns "
            "alternating and ending with assistant",
        )


PARSERS: dict[str, Callable[[dict[str, Any], list[str] | None], Parsed]] = {
    "classification": parse_classification,
    "instruction": parse_instruction,
    "completion": parse_completion,
    "chat": parse_chat,
}
