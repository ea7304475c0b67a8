"""Chat: {"messages": [{"role", "content"}, ...], "category" (optional)}; an optional system message, then
user/assistant turns ending with the assistant's."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from tunesmith.formats.base import Parsed, RowError, TaskFormat, category


def parse(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    messages = row.get("messages")
    if isinstance(messages, str):
        # CSV and some exports carry the message list as a JSON string; anything else stays a wrong type.
        with contextlib.suppress(json.JSONDecodeError):
            messages = json.loads(messages)
    if messages is None:
        raise RowError("missing_field", "messages", 'missing field "messages"')
    if not isinstance(messages, list) or not messages:
        raise RowError("wrong_type", "messages", 'field "messages" must be a non-empty list of {"role", "content"}')
    clean = [_message(i, message) for i, message in enumerate(messages)]
    _check_role_order([m["role"] for m in clean])
    return Parsed(clean, category=category(row))


def _message(i: int, message: Any) -> dict[str, str]:
    where = f"messages[{i}]"
    if not isinstance(message, dict) or set(message) - {"role", "content"}:
        raise RowError("wrong_type", where, f"{where} must be an object with only role and content")
    role, content = message.get("role"), message.get("content")
    if role not in ("system", "user", "assistant"):
        reason = f"{where}.role is {role!r}, not one of: system, user, assistant"
        raise RowError("invalid_role", f"{where}.role", reason)
    if not isinstance(content, str):
        raise RowError(
            "wrong_type", f"{where}.content", f"{where}.content must be a string, got {type(content).__name__}"
        )
    if not content.strip():
        raise RowError("empty_text", f"{where}.content", f"{where}.content is empty")
    return {"role": role, "content": content}


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


FORMAT = TaskFormat(
    name="chat",
    fields=frozenset({"messages", "category"}),
    parse=parse,
    baseline_system="You are a helpful assistant.",
    starter_row={"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]},
)
