"""Great Expectations gates: the suite in expectations/ for the data kind, run through a real GX context
on the curated data and on each split, with Data Docs rendered for people to browse."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tunesmith.formats import get_format
from tunesmith.formats.preference import same_reply
from tunesmith.records import Example
from tunesmith.resources import expectations_dir

logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass
class ValidationReport:
    suite: str
    success: bool  # False only when a critical expectation failed on some frame
    failures: list[dict[str, Any]] = field(default_factory=list)  # each names its frame (curated, train, ...)
    statistics: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # GX's own result JSON per frame
    docs_dir: str | None = None

    def summary(self) -> str:
        evaluated = sum(s.get("evaluated_expectations", 0) for s in self.statistics.values())
        if not self.failures:
            return f"suite '{self.suite}': all {evaluated} expectation checks met on {', '.join(self.statistics)}"
        lines = [f"suite '{self.suite}': {len(self.failures)} of {evaluated} expectation checks failed"]
        for f in self.failures:
            column = f" on {f['column']}" if f.get("column") else ""
            count, examples = f["unexpected_count"], f["examples"]
            lines.append(
                f"  [{f['severity']}] {f['frame']}: {f['expectation']}{column}: {count} unexpected, e.g. {examples}"
            )
        return "\n".join(lines)


def suite_path(data_format: str) -> Path:
    """The format's Great Expectations suite: its own path, or a file in expectations/ (<format>.json unless it names
    another)."""
    suite = get_format(data_format).suite or f"{data_format}.json"
    return Path(suite) if Path(suite).is_absolute() else expectations_dir() / suite


def examples_frame(examples: list[Example], token_counts: dict[str, int]) -> pd.DataFrame:
    """One row per example with the columns the suites check."""
    groups = Counter(e.group for e in examples)
    per_label = Counter(label for e in examples for label in e.labels or [])
    return pd.DataFrame(
        {
            "id": [e.id for e in examples],
            "prompt": [e.prompt_text for e in examples],
            "answer": [e.answer for e in examples],
            "rejected": [e.rejected for e in examples],
            "replies_differ": [None if e.rejected is None else not same_reply(e.answer, e.rejected) for e in examples],
            "label": [e.label for e in examples],
            "category": [e.category for e in examples],
            "class_count": [groups[e.group] if e.group is not None else None for e in examples],
            "n_labels": [len(e.labels) if e.labels is not None else None for e in examples],
            "rarest_label_count": [min(per_label[x] for x in e.labels) if e.labels else None for e in examples],
            "n_turns": [sum(m["role"] == "assistant" for m in e.messages) for e in examples],
            "n_tokens": [token_counts[e.id] for e in examples],
        }
    )


def validate_frames(
    frames: dict[str, tuple[pd.DataFrame, dict[str, Any]]], suite_file: Path, docs_dir: Path | None = None
) -> ValidationReport:
    """Validate each named frame with its own suite parameters; optionally render GX Data Docs to docs_dir."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    suite = context.suites.add(ExpectationSuite(**json.loads(suite_file.read_text(encoding="utf-8"))))
    asset = context.data_sources.add_pandas("tunesmith").add_dataframe_asset("examples")
    report = ValidationReport(suite=suite.name, success=True)
    for name, (frame, parameters) in frames.items():
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=asset.add_batch_definition_whole_dataframe(name), suite=suite)
        )
        checkpoint = context.checkpoints.add(gx.Checkpoint(name=f"check-{name}", validation_definitions=[definition]))
        run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters)
        result = next(iter(run.run_results.values()))
        report.results[name] = result.to_json_dict()
        report.statistics[name] = dict(result.statistics)
        report.failures += _failures(name, result)
    report.success = not any(f["severity"] == "critical" for f in report.failures)
    if docs_dir is not None:
        # Rendered once for all frames: a docs action on each checkpoint re-renders the whole site every time.
        context.build_data_docs()
        report.docs_dir = _copy_docs(context, docs_dir)
    return report


def _failures(frame: str, result) -> list[dict[str, Any]]:
    failures = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        r = item.result
        failures.append(
            {
                "frame": frame,
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "severity": config.severity.value,
                "why": (config.meta or {}).get("why"),
                "unexpected_count": r.get("unexpected_count", r.get("missing_count", r.get("observed_value"))),
                "examples": (
                    r.get("partial_unexpected_list") or r.get("partial_missing_list") or [r.get("observed_value")]
                )[:5],
            }
        )
    return failures


def _copy_docs(context, docs_dir: Path) -> str | None:
    for url in context.get_docs_sites_urls():
        site = url.get("site_url")
        if site and site.startswith("file://"):
            source = Path(site.removeprefix("file://")).parent
            shutil.copytree(source, docs_dir, dirs_exist_ok=True)
            return str(docs_dir)
    return None
