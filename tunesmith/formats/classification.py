"""Classification: {"text", "label"}, one label of data.labels per row; scored by the most likely label."""

from __future__ import annotations

from typing import Any

from tunesmith.formats.base import Parsed, RowError, TaskFormat, exchange, text_field


def parse(row: dict[str, Any], labels: list[str] | None) -> Parsed:
    text = text_field(row, "text")
    label = text_field(row, "label")
    if labels is not None and label not in labels:
        raise RowError("unknown_label", "label", f'field "label" is "{label}", not one of: {", ".join(labels)}')
    return Parsed(exchange(text, label), label=label)


def refuse_multi_label(row: dict[str, Any]) -> None:
    label = row.get("label", row.get("labels"))
    if isinstance(label, list):
        field = "label" if "label" in row else "labels"
        raise RowError(
            "unsupported_shape",
            field,
            f'a list in "{field}": these are multi-label rows, and classification takes exactly one label per '
            'example. Set data.format: multilabel (rows {"text", "labels": [...]})',
        )


FORMAT = TaskFormat(
    name="classification",
    fields=frozenset({"text", "label"}),
    parse=parse,
    baseline_system=(
        "You are a support assistant. Classify the customer message into exactly one of these labels: "
        "{labels}. Answer with the label only."
    ),
    # A classifier learns its labels from the answers, and its replies are scored against the label set anyway,
    # so the list stays out: the prompt (and the cost of every training and inference step) does not grow with
    # the number of labels.
    trained_system="You are a support assistant. Classify the customer message. Answer with the label only.",
    starter_row={"text": "My card was charged twice", "label": "billing"},
    task_type="classification",
    has_labels=True,
    starter_labels=("billing", "technical", "general"),
    check_shape=refuse_multi_label,
)
