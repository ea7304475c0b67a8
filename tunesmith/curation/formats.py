"""Row parsers: one per input format, each turning a row (a dict) into chat messages plus label/category."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class RowError(ValueError):
    """A row that cannot be used: its kind (for the report), the field at fault and a readable reason."""

    def __init__(self, kind: str, field: str | None, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Parsed:
    messages: list[dict[str, str]]
    label: str | None = None
    category: str | None = None


def _text(row: dict[str, Any], name: str, required: bool = True) -> str:
    if name not in row or row[name] is None:
        if required:
            raise RowError("missing_field", name, f'missing field "{name}"')
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise RowError("wrong_type", name, f'field "{name}" must be a string, got {type(value).__name__} {value!r:.80}')
    if required and not value.strip():
        raise RowError("empty_text", name, f'field "{name}" is empty')
    return value


FORMAT_FIELDS: dict[str, set[str]] = {
    "classification": {"text", "label"},
    "instruction": {"instruction", "input", "output", "category"},
    "completion": {"prompt", "completion", "category"},
    "chat": {"messages", "category"},
}


def extra_fields(row: dict[str, Any], data_format: str) -> list[str]:
    """The row's fields that its format does not read."""
    return sorted(set(row) - FORMAT_FIELDS[data_format])


def refuse_unsupported_shape(row: dict[str, Any], data_format: str) -> None:
    """Rows of a shape Tunesmith does not train on, named as such rather than as a missing field."""
    label = row.get("label", row.get("labels"))
    if data_format == "classification" and isinstance(label, list):
        field = "label" if "label" in row else "labels"
        raise RowError(
            "unsupported_shape",
            field,
            f'multi-label rows (a list in "{field}") are not supported: classification takes exactly one label per '
            "example. Keep one label per row, or train on each label as its own classification task",
        )


def reject_extra_fields(row: dict[str, Any], data_format: str) -> None:
    """data.unknown_fields: reject: a row with a field its format does not read is an error."""
    extra = extra_fields(row, data_format)
    if extra:
        allowed = FORMAT_FIELDS[data_format]
        raise RowError(
            "unexpected_field",
            extra[0],
            f"unexpected field(s): {', '.join(extra)} (expected only: {', '.join(sorted(allowed))}; "
            "map other names with data.columns, drop them with data.ignore_fields, or let data.unknown_fields: "
            "ignore skip them)",
        )


def _category(row: dict[str, Any]) -> str | None:
    return _text(row, "category", required=False) or None


def parse_classification(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    text = _text(row, "text")
    label = _text(row, "label")
    if labels is not None and label not in labels:
        raise RowError("unknown_label", "label", f'field "label" is "{label}", not one of: {", ".join(labels)}')
    return Parsed([{"role": "user", "content": text}, {"role": "assistant", "content": label}], label=label)


def parse_instruction(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    instruction = _text(row, "instruction")
    extra_input = _text(row, "input", required=False)
    output = _text(row, "output")
    prompt = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    return Parsed(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}], category=_category(row)
    )


def parse_completion(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    prompt = _text(row, "prompt")
    completion = _text(row, "completion")
    return Parsed(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], category=_category(row)
    )


def parse_chat(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    messages = row.get("messages")
    if messages is None:
        raise RowError("missing_field", "messages", 'missing field "messages"')
    if not isinstance(messages, list) or not messages:
        raise RowError("wrong_type", "messages", 'field "messages" must be a non-empty list of {"role", "content"}')
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise RowError("wrong_type", where, f"{where} must be an object with only role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise RowError(
                "invalid_role", f"{where}.role", f"{where}.role is {role!r}, not one of: system, user, assistant"
            )
        if not isinstance(content, str):
            raise RowError(
                "wrong_type", f"{where}.content", f"{where}.content must be a string, got {type(content).__name__}"
            )
        if not content.strip():
            raise RowError("empty_text", f"{where}.content", f"{where}.content is empty")
        clean.append({"role": role, "content": content})
    _check_role_order([m["role"] for m in clean])
    return Parsed(clean, category=_category(row))


def _check_role_order(roles: list[str]) -> None:
    turns = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(turns) // 2 + 1)
    if not turns or turns != expected[: len(turns)] or turns[-1] != "assistant":
        raise RowError(
            "invalid_role_order",
            "messages",
            f"invalid role order {' > '.join(roles)}: expected an optional system message, then user/assistant "
            "turns alternating and ending with assistant",
        )


PARSERS: dict[str, Callable[[dict[str, Any], list[str] | None], Parsed]] = {
    "classification": parse_classification,
    "instruction": parse_instruction,
    "completion": parse_completion,
    "chat": parse_chat,
}
