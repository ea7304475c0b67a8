"""`tunesmith check`: the curation a run would do, on the same data with the same settings, without training.

It runs the curation stage itself (row validation, deduplication, split feasibility and the Great
Expectations suite) into a temporary folder, so that a check that passes means curation will not stop the run.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.curation.curate import REJECT_KINDS_INVALID, curate
from tunesmith.curation.records import Rejected
from tunesmith.curation.stage import training_threshold
from tunesmith.prompts import training_prompt
from tunesmith.records import CuratedData


@dataclass
class CheckReport:
    data: CuratedData
    invalid_rows: list[Rejected]  # every row curation would reject as invalid, with its file, line and reason

    @property
    def problems(self) -> list[str]:
        """What would stop the run at curation."""
        return self.data.problems


def check_data(config: RunConfig, tokenizer) -> CheckReport:
    """Curate the configured data in a scratch folder and report what a run's curation would find."""
    system = training_prompt(config)
    with tempfile.TemporaryDirectory(prefix="tunesmith-check-") as scratch:
        data = curate(
            config.data, tokenizer, system, config.training.max_seq_length, Path(scratch), training_threshold(config)
        )
        rejects = [json.loads(line) for line in Path(data.rejects_path).read_text(encoding="utf-8").splitlines()]
    return CheckReport(data, [Rejected(**r) for r in rejects if r["kind"] in REJECT_KINDS_INVALID])
