"""Read rows from JSONL, JSON, CSV, Parquet or a saved `datasets` folder, each with its provenance.

A row that cannot even be read (bad bytes, broken JSON) comes back with an error instead of a value, so the
caller can reject it with its file and line rather than stop the run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.formats.base import RowError

FILE_FORMATS = ("jsonl", "json", "csv", "parquet", "datasets")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class InputFileError(DataError, ValueError):
    """The file as a whole cannot be read (not a row-level problem)."""

    def __init__(self, problem: str, where: str = "data.path", fix: str = ""):
        fix = fix or (
            "correct the file, or point data.path at the right one (data.file_format names the format when the "
            "file's suffix does not); `tunesmith check CONFIG` reads the data without a run"
        )
        super().__init__(problem, where, fix)


@dataclass
class RawRow:
    source: str
    row: Any = None
    raw: str = ""
    error: RowError | None = None


def detect_file_format(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise InputFileError(
            f"{path}: cannot tell the file format from the suffix '{path.suffix}'; set data.file_format "
            f"to one of: {', '.join(FILE_FORMATS)}"
        ) from None


def read_rows(path: Path, file_format: str = "auto") -> Iterator[RawRow]:
    """Yield every row of the input with a source such as 'data.jsonl line 7' or 'data.parquet row 7'."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist")
    kind = detect_file_format(path) if file_format == "auto" else file_format
    yield from {"jsonl": _jsonl, "json": _json, "csv": _csv, "parquet": _parquet, "datasets": _datasets}[kind](path)


def _jsonl(path: Path) -> Iterator[RawRow]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue  # blank lines carry no row
            source = f"{path} line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RawRow(
                    source,
                    raw=repr(raw[:200]),
                    error=RowError("undecodable", None, f"undecodable bytes (not UTF-8) at byte {err.start}"),
                )
                continue
            try:
                yield RawRow(source, json.loads(text), text[:500])
            except json.JSONDecodeError as err:
                yield RawRow(
                    source,
                    raw=text[:500],
                    error=RowError("malformed_json", None, f"malformed JSON: {err.msg} (column {err.colno})"),
                )


def _json(path: Path) -> Iterator[RawRow]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: undecodable bytes (not UTF-8) at byte {err.start}") from None
    except json.JSONDecodeError as err:
        raise InputFileError(f"{path} line {err.lineno} column {err.colno}: not valid JSON: {err.msg}") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]}
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON array of rows (or an object holding one array)")
    for number, row in enumerate(data, start=1):
        yield RawRow(f"{path} item {number}", row, json.dumps(row, ensure_ascii=False)[:500])


def _csv(path: Path) -> Iterator[RawRow]:
    # surrogateescape keeps undecodable bytes visible per row instead of failing the whole file.
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle, restkey="__extra_values__")
        line = 1  # the header
        for row in reader:
            source = f"{path} line {line + 1}"
            line = reader.line_num
            raw = json.dumps(row, ensure_ascii=False, default=str)[:500]
            if any(isinstance(v, str) and _has_surrogates(v) for v in row.values()):
                yield RawRow(
                    source,
                    raw=raw.encode("utf-8", "backslashreplace").decode(),
                    error=RowError("undecodable", None, "undecodable bytes (not UTF-8)"),
                )
            elif "__extra_values__" in row:
                yield RawRow(source, raw=raw, error=RowError("malformed_row", None, "more values than header columns"))
            else:
                yield RawRow(source, {k: v for k, v in row.items() if v is not None}, raw)


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    for number, row in enumerate(pq.read_table(path).to_pylist(), start=1):
        yield RawRow(
            f"{path} row {number}", {k: v for k, v in row.items() if v is not None}, json.dumps(row, default=str)[:500]
        )


def _datasets(path: Path) -> Iterator[RawRow]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(path))
    parts = {"": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    for split, dataset in parts.items():
        label = f"[{split}]" if split else ""
        for number, row in enumerate(dataset, start=1):
            yield RawRow(
                f"{path}{label} row {number}",
                {k: v for k, v in row.items() if v is not None},
                json.dumps(row, default=str)[:500],
            )
