"""Markdown tables for every report Tunesmith writes, built in one place.

Written here rather than with tabulate or pandas' to_markdown: those pad every cell to its column's width, which
makes each report's diff noisy when one number changes, and the reports are read rendered (MLflow, Prefect,
GitHub), where padding shows nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any) -> str:
    """A value as a table shows it: floats to 4 significant digits, pipes escaped."""
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")


def shorten(text: str, limit: int = 160) -> str:
    """Text on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
