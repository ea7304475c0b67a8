"""Great Expectations gates: run a suite from expectations/ on curated examples through a real GX context."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.curation.records import Example

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass
class ValidationReport:
    suite: str
    success: bool  # False only when a critical expectation failed
    failures: list[dict[str, Any]] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.failures:
            return f"suite '{self.suite}': all {self.statistics.get('evaluated_expectations', 0)} expectations met"
        lines = [f"suite '{self.suite}': {len(self.failures)} expectation(s) failed"]
        for f in self.failures:
            column = f" on {f['column']}" if f.get("column") else ""
            count, examples = f["unexpected_count"], f["examples"]
            lines.append(f"  [{f['severity']}] {f['expectation']}{column}: {count} unexpected, e.g. {examples}")
        return "\n".join(lines)


def suite_path(data_format: str) -> Path:
    name = "classification" if data_format == "classification" else "generation"
    return EXPECTATIONS_DIR / f"{name}.json"


def examples_frame(examples: list[Example], token_counts: dict[str, int]) -> pd.DataFrame:
    """One row per example with the columns the suites check."""
    return pd.DataFrame(
        {
            "id": [e.id for e in examples],
            "prompt": [e.prompt_text for e in examples],
            "answer": [e.answer for e in examples],
            "label": [e.label for e in examples],
            "n_tokens": [token_counts[e.id] for e in examples],
        }
    )


def validate_frame(frame: pd.DataFrame, suite_file: Path, parameters: dict[str, Any]) -> ValidationReport:
    """Validate a frame against a suite file; any failed critical expectation makes success False."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    suite = context.suites.add(ExpectationSuite(**json.loads(suite_file.read_text(encoding="utf-8"))))
    batch = (
        context.data_sources.add_pandas("tunesmith")
        .add_dataframe_asset("examples")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(suite, expectation_parameters=parameters, result_format="SUMMARY")
    failures = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        failures.append(
            {
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "severity": config.severity.value,
                "unexpected_count": item.result.get("unexpected_count", item.result.get("observed_value")),
                "examples": (item.result.get("partial_unexpected_list") or [item.result.get("observed_value")])[:5],
            }
        )
    return ValidationReport(
        suite=suite.name,
        success=not any(f["severity"] == "critical" for f in failures),
        failures=failures,
        statistics=dict(result.statistics),
        result=result.to_json_dict(),
    )
