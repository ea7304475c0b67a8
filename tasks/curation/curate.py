"""The curation stage: load, reject, deduplicate, split and validate; every row is accounted for."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks.config.schema import DataConfig
from tasks.curation.dedup import exact_dedup
from tasks.curation.load import load_jsonl
from tasks.curation.records import Example, Rejected, write_examples, write_jsonl
from tasks.curation.split import stratified_split
from tasks.curation.validate import ValidationReport, examples_frame, suite_path, validate_frame
from tasks.prompts import full_messages


@dataclass
class CuratedData:
    """What curation hands on: split files, counts and the checks that passed or failed."""

    task_type: str  # "classification" or "generation"
    labels: list[str] | None
    train_path: str
    validation_path: str
    test_path: str
    rejects_path: str
    data_hash: str
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    validation: dict[str, Any]
    problems: list[str] = field(default_factory=list)  # anything here stops the pipeline

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def count_tokens(examples: list[Example], tokenizer, system: str) -> dict[str, int]:
    """Tokens per example in the chat format the model is trained on."""
    return {
        e.id: len(tokenizer.apply_chat_template(full_messages(e, system), tokenize=True, return_dict=True)["input_ids"])
        for e in examples
    }


def data_fingerprint(examples: list[Example]) -> str:
    """Content hash of the normalized examples, independent of their order in the file."""
    digest = hashlib.sha256()
    for example_id in sorted(e.id for e in examples):
        digest.update(example_id.encode())
    return digest.hexdigest()[:16]


def curate(config: DataConfig, tokenizer, system: str, max_tokens: int, out_dir: Path) -> CuratedData:
    """Run the curation stage and write its files under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_jsonl(config.path, config.format, config.labels)
    tokens = count_tokens(loaded.examples, tokenizer, system)
    examples = []
    for example in loaded.examples:
        if tokens[example.id] > max_tokens:
            loaded.rejected.append(
                Rejected(
                    example.source,
                    f"example is {tokens[example.id]} tokens, longer than the maximum {max_tokens}",
                    None,
                )
            )
        else:
            examples.append(example)
    deduped = exact_dedup(examples)
    splits = stratified_split(deduped.kept, config.split.validation, config.split.test, config.seed)

    rejects_path = write_jsonl(
        [{"source": r.source, "field": r.field, "reason": r.reason, "raw": r.raw} for r in loaded.rejected]
        + [
            {"source": d.source, "field": None, "reason": f"exact duplicate of {k.source}", "raw": d.prompt_text}
            for d, k in deduped.removed
        ],
        out_dir / "rejects.jsonl",
    )
    paths = {name: write_examples(part, out_dir / f"{name}.jsonl") for name, part in vars(splits).items()}

    task_type = "classification" if config.format == "classification" else "generation"
    report = validate_frame(
        examples_frame(deduped.kept, tokens),
        suite_path(config.format),
        {"labels": config.labels or [], "min_tokens": config.min_tokens, "max_tokens": max_tokens, "min_rows": 1},
    )
    (out_dir / "gx_validation.json").write_text(json.dumps(report.result, indent=2, default=str), encoding="utf-8")

    counts = {
        "read": loaded.read,
        "rejected": len(loaded.rejected),
        "exact_duplicates": len(deduped.removed),
        "label_conflicts": len(deduped.conflicts),
        "kept": len(deduped.kept),
        **splits.sizes(),
    }
    problems = _problems(counts, config.max_rejected_fraction, report, loaded.rejected)
    return CuratedData(
        task_type=task_type,
        labels=config.labels,
        train_path=str(paths["train"]),
        validation_path=str(paths["validation"]),
        test_path=str(paths["test"]),
        rejects_path=str(rejects_path),
        data_hash=data_fingerprint(deduped.kept),
        counts=counts,
        class_counts={name: dict(Counter(str(e.label) for e in part)) for name, part in vars(splits).items()},
        validation={"success": report.success, "failures": report.failures, "summary": report.summary()},
        problems=problems,
    )


def _problems(counts: dict[str, int], limit: float, report: ValidationReport, rejected: list[Rejected]) -> list[str]:
    problems = []
    if counts["read"] == 0:
        problems.append("no input rows were read")
    elif counts["rejected"] / counts["read"] > limit:
        shown = "\n    ".join(r.message() for r in rejected[:5])
        problems.append(
            f"{counts['rejected']} of {counts['read']} rows rejected ({counts['rejected'] / counts['read']:.1%}), "
            f"over the data.max_rejected_fraction limit of {limit:.0%}; first ones:\n    {shown}"
        )
    if not report.success:
        problems.append("Great Expectations validation failed:\n" + report.summary())
    return problems
