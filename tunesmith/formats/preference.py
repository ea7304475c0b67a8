"""Preference pairs: a prompt and two replies, the one people preferred and the one they did not.

Rows come in the two shapes TRL reads:
- explicit: {"prompt", "chosen", "rejected"}, the prompt as text or as messages, each reply as text or as a
  one-message list;
- implicit: {"chosen", "rejected"} holding two whole conversations (message lists, or Anthropic's HH-RLHF text
  "\\n\\nHuman: ...\\n\\nAssistant: ...") that share everything but the last assistant turn. The shared part is
  split off as the prompt; a row whose two sides differ earlier has no prompt to prefer a reply to, and is rejected
  with the turn where they part.
"""

from __future__ import annotations

import re
from typing import Any

from tunesmith.formats.base import Parsed, RowError, TaskFormat, category
from tunesmith.formats.chat import parse as parse_chat

# HH-RLHF writes a conversation as text with these speaker marks (TRL's `extract_prompt` works on message lists
# only, so the text form is split here).
_SPEAKER = re.compile(r"\n\n(Human|Assistant): ")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    if "chosen" not in row or row["chosen"] is None:
        raise RowError("missing_field", "chosen", 'missing field "chosen"')
    if "rejected" not in row or row["rejected"] is None:
        raise RowError("missing_field", "rejected", 'missing field "rejected"')
    if row.get("prompt") is not None:
        prompt = _prompt(row["prompt"])
        chosen, rejected = _reply(row["chosen"], "chosen"), _reply(row["rejected"], "rejected")
    else:
        prompt, chosen, rejected = split_shared_prompt(
            _conversation(row["chosen"], "chosen"), _conversation(row["rejected"], "rejected")
        )
    for field, reply in (("chosen", chosen), ("rejected", rejected)):
        if not reply.strip():
            raise RowError("empty_text", field, f'the reply in "{field}" is empty')
    if same_reply(chosen, rejected):
        raise RowError("identical_pair", "rejected", "chosen and rejected are the same reply: nothing to prefer")
    where = "prompt" if row.get("prompt") is not None else "chosen"
    try:
        messages = parse_chat({"messages": [*prompt, {"role": "assistant", "content": chosen}]}, None).messages
    except RowError as err:
        raise RowError(err.kind, where, f'the conversation in "{where}": {err.reason}') from None
    return Parsed(messages, category=category(row), rejected=rejected)


def same_reply(one: str, other: str) -> bool:
    """Equal but for case and spacing: nothing to prefer."""
    return " ".join(one.lower().split()) == " ".join(other.lower().split())


def split_shared_prompt(
    chosen: list[dict[str, str]], rejected: list[dict[str, str]]
) -> tuple[list[dict[str, str]], str, str]:
    """(the shared prompt, the chosen reply, the rejected reply) of two conversations that differ only in their
    last assistant turn; RowError naming the turn where they part otherwise."""
    for side, turns in (("chosen", chosen), ("rejected", rejected)):
        if len(turns) < 2 or turns[-1]["role"] != "assistant":
            raise RowError(
                "no_shared_prompt", side, f'"{side}" must be a conversation that ends with an assistant reply'
            )
    prompt = chosen[:-1]
    if len(rejected) != len(chosen) or _plain(rejected[:-1]) != _plain(prompt):
        turn = next(
            (i for i, (a, b) in enumerate(zip(chosen, rejected, strict=False)) if _plain([a]) != _plain([b])),
            min(len(chosen), len(rejected)) - 1,
        )
        raise RowError(
            "no_shared_prompt",
            "rejected",
            f"chosen and rejected part at turn {turn + 1} of {len(chosen)}/{len(rejected)}, before their last "
            "assistant reply: they answer different conversations, so neither is preferred to the other",
        )
    return prompt, chosen[-1]["content"], rejected[-1]["content"]


def _plain(messages: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(m["role"], " ".join(m["content"].split())) for m in messages]


def _conversation(value: Any, field: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return _hh_turns(value, field)
    if isinstance(value, list):
        return _messages(value, field)
    raise RowError("wrong_type", field, f'field "{field}" must be a conversation (text or messages), got '
                                        f"{type(value).__name__}")  # fmt: skip


def _hh_turns(text: str, field: str) -> list[dict[str, str]]:
    parts = _SPEAKER.split(text if text.startswith("\n\n") else "\n\n" + text)
    if len(parts) < 3 or parts[0].strip():
        raise RowError(
            "wrong_type",
            field,
            f'field "{field}" holds text without "Human:"/"Assistant:" turns: give the prompt in "prompt" and '
            f'only the reply in "{field}", or the whole conversation as a list of messages',
        )
    return [{"role": _ROLES[who], "content": said.strip()} for who, said in zip(parts[1::2], parts[2::2], strict=True)]


def _messages(value: list, field: str) -> list[dict[str, str]]:
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise RowError("wrong_type", f"{field}[{i}]", f"{field}[{i}] must be an object with role and content")
    return [{"role": str(m.get("role")), "content": m["content"]} for m in value]


def _prompt(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError("empty_text", "prompt", 'field "prompt" is empty')
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value:
        return _messages(value, "prompt")
    raise RowError("wrong_type", "prompt", f'field "prompt" must be text or a list of messages, got {value!r:.80}')


def _reply(value: Any, field: str) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content")
    if not isinstance(value, str):
        raise RowError("wrong_type", field, f'field "{field}" must be the reply as text, got {type(value).__name__}')
    if not value.strip():
        raise RowError("empty_text", field, f'field "{field}" is empty')
    return value


FORMAT = TaskFormat(
    name="preference",
    fields=frozenset({"prompt", "chosen", "rejected", "category"}),
    parse=parse,
    baseline_system="You are a helpful assistant.",
    starter_row={
        "prompt": "My card was charged twice",
        "chosen": "I'm sorry ... here is how to get a refund: ...",
        "rejected": "That is your bank's problem.",
    },  # fmt: skip
    task_type="preference",
)
