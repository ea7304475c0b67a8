"""The data formats Tunesmith trains on: one module each, registered here (a format added to this dict reaches the
config schema, curation, the prompts, `tunesmith init` and the command line)."""

from __future__ import annotations

from tunesmith.formats import chat, classification, completion, instruction, multilabel, preference
from tunesmith.formats.base import Parsed, RowError, TaskFormat

# In the order `tunesmith init --help` lists them; the first is the default.
FORMATS: dict[str, TaskFormat] = {
    f.name: f
    for f in (
        classification.FORMAT, multilabel.FORMAT, instruction.FORMAT, chat.FORMAT, completion.FORMAT,
        preference.FORMAT,
    )
}  # fmt: skip


def register(task_format: TaskFormat) -> TaskFormat:
    """Add a format (a plugin's, a test's) to the registry."""
    FORMATS[task_format.name] = task_format
    return task_format


def get_format(name: str) -> TaskFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown data format {name!r}: use one of {', '.join(FORMATS)}")
    return FORMATS[name]


def field_names() -> set[str]:
    """Every field some format reads: what data.columns may map."""
    return {name for f in FORMATS.values() for name in f.fields}


__all__ = ["FORMATS", "Parsed", "RowError", "TaskFormat", "field_names", "get_format", "register"]
