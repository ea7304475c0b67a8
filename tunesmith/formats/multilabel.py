"""Multi-label classification: {"text", "labels"}, every label of data.labels that applies to the row (none may).

The model answers with the set as text: the labels in data.labels' order joined by ", ", or "none". One generated
answer per example costs a few tokens; scoring each label's presence the way single-label classification scores its
labels would put every one of the label set's continuations (62 for NLU++) through the model per example, and a
model trained on the written-out sets already writes almost only known labels (the invalid-label rate is reported
with every evaluation). `parse_answer` reads an answer back into a set, forgiving case, spaces and order.
"""

from __future__ import annotations

import re
from typing import Any

from tunesmith.formats.base import Parsed, RowError, TaskFormat, exchange, text_field

SEPARATOR = ", "
NONE = "none"


def answer_for(labels: list[str], label_set: list[str]) -> str:
    """The answer a model is trained to write for a row's labels: in the label set's order, or "none"."""
    chosen = set(labels)
    return SEPARATOR.join(label for label in label_set if label in chosen) or NONE


def _key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().strip(".\"'`").lower())


def parse_answer(text: str, label_set: list[str]) -> tuple[list[str], list[str]]:
    """(the known labels an answer names, in the label set's order; the parts that name no label). Labels are
    separated by commas, semicolons or lines; case, spaces for underscores and surrounding quotes are forgiven."""
    known = {_key(label): label for label in label_set}
    found: set[str] = set()
    unknown = []
    for part in re.split(r"[,;\n]+", text):
        key = _key(part)
        if not key or key == NONE:
            continue
        if key in known:
            found.add(known[key])
        else:
            unknown.append(part.strip())
    return [label for label in label_set if label in found], unknown


def parse(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    text = text_field(row, "text")
    if "labels" not in row or row["labels"] is None:
        raise RowError("missing_field", "labels", 'missing field "labels" (a list of labels; [] when none applies)')
    value = row["labels"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowError("wrong_type", "labels", f'field "labels" must be a list of strings, got {value!r:.80}')
    if labels is not None:
        unknown = [v for v in value if v not in labels]
        if unknown:
            raise RowError("unknown_label", "labels", f'field "labels" has {", ".join(map(repr, unknown))}, not in '
                           f"data.labels ({len(labels)} labels)")  # fmt: skip
    label_set = labels if labels is not None else sorted(set(value))
    chosen = [label for label in label_set if label in set(value)]
    return Parsed(exchange(text, answer_for(chosen, label_set)), labels=chosen)


FORMAT = TaskFormat(
    name="multilabel",
    fields=frozenset({"text", "labels"}),
    parse=parse,
    baseline_system=(
        "You are a support assistant. Tag the customer message with every one of these labels that applies: "
        "{labels}. Answer with the labels separated by commas, or none if no label applies."
    ),
    # As for single-label classification, the trained model learns its labels from the answers.
    trained_system=(
        "You are a support assistant. Tag the customer message with every label that applies. Answer with the "
        "labels separated by commas, or none."
    ),
    starter_row={"text": "My card was charged twice and the app keeps crashing", "labels": ["billing", "technical"]},
    task_type="multilabel",
    has_labels=True,
    starter_labels=("billing", "technical", "general"),
)
