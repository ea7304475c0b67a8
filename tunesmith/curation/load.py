"""Turn every input row into an Example or a Rejected row with its reason: nothing is silently lost."""

from __future__ import annotations

from pathlib import Path

from tunesmith.curation.readers import read_rows
from tunesmith.curation.records import LoadResult, Rejected, make_example
from tunesmith.formats import RowError, TaskFormat, get_format


def load_records(
    path: Path,
    data_format: str,
    labels: list[str] | None = None,
    file_format: str = "auto",
    columns: dict[str, str] | None = None,
    ignore_fields: list[str] | None = None,
    origin: str = "task",
    unknown_fields: str = "ignore",
) -> LoadResult:
    """Read and parse a file; `columns` maps our field names to the file's (e.g. {"text": "body"}). Fields the
    format does not read are skipped and counted (unknown_fields="ignore") or make the row a reject ("reject")."""
    task_format = get_format(data_format)
    result = LoadResult()
    for raw in read_rows(Path(path), file_format):
        result.read += 1
        try:
            if raw.error is not None:
                raise raw.error
            if not isinstance(raw.row, dict):
                raise RowError("not_object", None, f"expected an object with fields, got {type(raw.row).__name__}")
            row = _remap(raw.row, columns or {}, ignore_fields or [])
            if task_format.check_shape:
                task_format.check_shape(row)
            if unknown_fields == "reject":
                reject_extra_fields(row, task_format)
            else:
                for name in extra_fields(row, task_format):
                    result.ignored_fields[name] = result.ignored_fields.get(name, 0) + 1
                    del row[name]
            parsed = task_format.parse(row, labels)
        except RowError as err:
            result.rejected.append(Rejected(raw.source, err.kind, err.reason, err.field, raw.raw))
            continue
        result.examples.append(
            make_example(
                parsed.messages, raw.source, parsed.label, parsed.category, origin, parsed.rejected, parsed.labels
            )
        )
    return result


def _remap(row: dict, columns: dict[str, str], ignore: list[str]) -> dict:
    row = {k: v for k, v in row.items() if k not in ignore}
    for ours, theirs in columns.items():
        if theirs in row:
            row[ours] = row.pop(theirs)
    return row


def extra_fields(row: dict, task_format: TaskFormat) -> list[str]:
    """The row's fields that its format does not read."""
    return sorted(set(row) - task_format.fields)


def reject_extra_fields(row: dict, task_format: TaskFormat) -> None:
    """data.unknown_fields: reject: a row with a field its format does not read is an error."""
    extra = extra_fields(row, task_format)
    if extra:
        raise RowError(
            "unexpected_field",
            extra[0],
            f"unexpected field(s): {', '.join(extra)} (expected only: {', '.join(sorted(task_format.fields))}; "
            "map other names with data.columns, drop them with data.ignore_fields, or let data.unknown_fields: "
            "ignore skip them)",
        )


INPUT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq")


def input_files(path: Path, incoming: Path | None) -> list[Path]:
    """The corpus first, then every data file dropped into the incoming folder, in name order."""
    files = [Path(path)]
    if incoming is not None and Path(incoming).is_dir():
        files += sorted(p for p in Path(incoming).iterdir() if p.suffix.lower() in INPUT_SUFFIXES or p.is_dir())
    return files


def load_inputs(config) -> LoadResult:
    """Every row of the corpus and of the incoming files, in that order (so duplicates keep the corpus copy)."""
    merged = LoadResult()
    for file in input_files(config.path, config.incoming):
        file_format = config.file_format if file == Path(config.path) else "auto"
        part = load_records(
            file, config.format, config.labels, file_format, config.columns, config.ignore_fields,
            unknown_fields=config.unknown_fields,
        )  # fmt: skip
        for name, rows in part.ignored_fields.items():
            merged.ignored_fields[name] = merged.ignored_fields.get(name, 0) + rows
        merged.examples += part.examples
        merged.rejected += part.rejected
        merged.read += part.read
    return merged


def load_test_file(config) -> LoadResult:
    """Every row of data.test_path, read with data.path's format, labels and columns."""
    return load_records(
        config.test_path, config.format, config.labels, "auto", config.columns, config.ignore_fields,
        unknown_fields=config.unknown_fields,
    )  # fmt: skip
