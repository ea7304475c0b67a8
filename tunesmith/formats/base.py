"""What a data format is: the fields its rows carry, how a row becomes a conversation, the prompts an untrained
and a trained model are asked with, its Great Expectations suite, a starter row, and how it is scored.

Each format is one module of this package declaring a `TaskFormat`; the registry in __init__.py is read by the
config schema, curation, the prompts, `tunesmith init` and the command line. This module imports nothing of
Tunesmith's, so every stage can depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


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
    rejected: str | None = None  # preference pairs: the reply people liked less than the last message's
    labels: list[str] | None = None  # multi-label rows: every label that applies, in the label set's order


Parser = Callable[[dict[str, Any], "list[str] | None"], Parsed]


@dataclass(frozen=True)
class TaskFormat:
    name: str
    fields: frozenset[str]  # the row fields it reads; any other is skipped or rejected (data.unknown_fields)
    parse: Parser  # a row (our field names) and the label set -> the conversation; RowError when unusable
    baseline_system: str  # what an untrained model is asked with; {labels} becomes the label list
    starter_row: dict[str, Any]  # one row as `tunesmith init` shows it
    # How evaluation scores it.
    task_type: Literal["classification", "multilabel", "generation", "preference"] = "generation"
    has_labels: bool = False  # each row carries one of data.labels, which the config must then list
    # What fine-tuning trains with; None: the baseline prompt.
    trained_system: str | None = None
    # The Great Expectations suite: a file name in expectations/, or a path; None: <name>.json in expectations/.
    suite: str | Path | None = None
    starter_labels: tuple[str, ...] = ()  # the label set `tunesmith init` writes for a labelled format
    # Rows of a shape it does not train on, refused by name rather than as a missing field (multi-label rows).
    check_shape: Callable[[dict[str, Any]], None] | None = None

    @property
    def training_system(self) -> str:
        return self.baseline_system if self.trained_system is None else self.trained_system


def text_field(row: dict[str, Any], name: str, required: bool = True) -> str:
    """The row's string field `name`; RowError when it is missing, not a string, or (when required) blank."""
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


def category(row: dict[str, Any]) -> str | None:
    """The optional `category` field: what generation data is stratified and reported by."""
    return text_field(row, "category", required=False) or None


def exchange(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
