"""Read an input file row by row: every row is either kept as an Example or rejected with its reason."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.curation.formats import PARSERS, RowError
from tasks.curation.records import LoadResult, Rejected, make_example


def load_jsonl(path: Path, data_format: str, labels: list[str] | None = None) -> LoadResult:
    """Parse a JSONL file; blank lines are not rows, every other line is kept or rejected."""
    parse = PARSERS[data_format]
    result = LoadResult()
    with Path(path).open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            result.read += 1
            source = f"{path} line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                result.rejected.append(
                    Rejected(
                        source,
                        f"undecodable bytes (not UTF-8): {err.reason} at byte {err.start}",
                        None,
                        repr(raw[:200]),
                    )
                )
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                result.rejected.append(
                    Rejected(source, f"malformed JSON: {err.msg} (column {err.colno})", None, text[:200])
                )
                continue
            if not isinstance(row, dict):
                result.rejected.append(
                    Rejected(source, f"expected a JSON object, got {type(row).__name__}", None, text[:200])
                )
                continue
            try:
                messages, label = parse(row, labels)
            except RowError as err:
                result.rejected.append(Rejected(source, err.reason, err.field, text[:200]))
                continue
            result.examples.append(make_example(messages, source, label))
    return result
