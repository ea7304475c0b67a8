"""The curation report: counts at every step, in markdown for people (the JSON twin is the CuratedData)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunesmith.report.markdown import markdown_table

if TYPE_CHECKING:
    from tunesmith.records import CuratedData

STEPS = [
    ("read", "rows read"),
    ("rejected_invalid", "rejected as invalid (see below)"),
    ("test_file_read", "rows read from data.test_path"),
    ("test_file_rejected", "of those, rejected as invalid"),
    ("test_file_repeats", "of those, removed as exact repeats"),
    ("exact_duplicates", "removed as exact duplicates"),
    ("near_duplicates", "removed as near duplicates (MinHash)"),
    ("semantic_duplicates", "removed as semantic duplicates (embeddings)"),
    ("kept_unique", "unique examples kept"),
    ("split_train", "train before the leakage check"),
    ("split_validation", "validation"),
    ("split_test", "test"),
    ("leakage_removed", "removed from train (and from validation, with a test file): copies of held-out examples"),
    ("balancing_dropped", "removed from train by balancing (cap)"),
    ("oversampled_copies", "added to train by balancing (oversampled copies)"),
    ("replay_added", "general-domain replay examples added to train"),
    ("train", "final train"),
    ("validation", "final validation"),
    ("test", "final test"),
]


def render_curation_report(data: CuratedData) -> str:
    c = data.counts
    lines = ["# Curation report", "", f"Format: {data.data_format}; data hash `{data.data_hash}`.", ""]
    steps = [(key, label) for key, label in STEPS if key in c or not key.startswith("test_file")]
    lines += [markdown_table(["step", "rows"], [(label, c.get(key, 0)) for key, label in steps])]
    accounted = c["rejected_invalid"] + c["exact_duplicates"] + c["near_duplicates"] + c["semantic_duplicates"]
    accounted += c["leakage_removed"] + c["balancing_dropped"] + c["train_from_input"] + c["validation"] + c["test"]
    accounted += c.get("test_file_rejected", 0) + c.get("test_file_repeats", 0)
    read = c["read"] + c.get("test_file_read", 0)
    lines += ["", f"Every row accounted for: {read} read = {accounted} rejected, removed or in a split.", ""]
    if data.ignored_fields:
        fields = ", ".join(f"`{name}` ({rows} rows)" for name, rows in data.ignored_fields.items())
        lines += [
            f"Fields the {data.data_format} format does not read were skipped: {fields}. "
            "Set data.unknown_fields: reject to refuse such rows instead.",
            "",
        ]
    if data.max_seq_length_source:
        lines += [f"training.max_seq_length: {data.max_seq_length} tokens, {data.max_seq_length_source}.", ""]
    if data.rejected_by_kind:
        lines += ["## Rejected and removed rows by reason", ""]
        lines += [markdown_table(["reason", "rows"], data.rejected_by_kind.items())]
        lines += ["", "Each one is in `rejects.jsonl` with its file, line and reason.", ""]
    groups = sorted({g for split in data.class_counts.values() for g in split})
    if groups and groups != ["None"]:
        rows = [[s, *(counts.get(g, 0) for g in groups)] for s, counts in data.class_counts.items()]
        lines += ["## Classes per split", "", markdown_table(["split", *groups], rows)]
        b = data.balance
        lines += ["", f"Balancing: strategy `{b['strategy']}`, imbalance ratio before {b['imbalance_ratio']}:1.", ""]
    lines += ["## Great Expectations", "", "```", data.validation["summary"], "```", ""]
    if data.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in data.warnings] + [""]
    if data.problems:
        lines += ["## Problems (the pipeline stops here)", ""] + [f"- {p}" for p in data.problems] + [""]
    return "\n".join(lines)
