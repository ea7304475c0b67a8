"""Tokenize conversations with the model's chat template and mask the loss to the assistant's turns."""

from __future__ import annotations

from typing import Any


class ChatTemplateError(ValueError):
    """The chat template does not render a conversation as a prefix of its continuation."""


def _ids(tokenizer, messages: list[dict[str, str]], generation_prompt: bool = False) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=True
        )["input_ids"]
    )


def tokenize_conversation(
    tokenizer, messages: list[dict[str, str]], loss_on: str = "assistant", max_length: int | None = None
) -> dict[str, Any]:
    """input_ids and labels (-100 where no loss is taken): every assistant turn, or every token for loss_on="all".

    Assistant spans are found by rendering the conversation up to each assistant turn, so any chat template
    that renders conversations as prefixes of each other works; no template markers are needed.
    """
    full = _ids(tokenizer, messages)
    if loss_on == "all":
        labels = list(full)
    else:
        labels = [-100] * len(full)
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(_ids(tokenizer, messages[:i], generation_prompt=True))
            end = len(_ids(tokenizer, messages[: i + 1]))
            if full[:end] != _ids(tokenizer, messages[: i + 1]):
                raise ChatTemplateError("the chat template renders a conversation differently from its prefix")
            labels[start:end] = full[start:end]
    if max_length is not None:
        full, labels = full[:max_length], labels[:max_length]
    return {"input_ids": full, "labels": labels}
