"""What every process of a distributed training runs: `python -m tunesmith.training.distributed.worker SPEC`.

accelerate's launcher (torchrun underneath) starts one per rank with RANK and WORLD_SIZE set; the Trainer joins
them into one job. Rank 0 shows progress and writes the result the pipeline reads back.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from tunesmith.console import progress
from tunesmith.training.distributed import lifetime
from tunesmith.training.distributed.events import EventReporter, Silent
from tunesmith.training.distributed.spec import TrainingSpec


def main(argv: list[str] | None = None) -> None:
    parent = os.getppid()
    lifetime.end_with_parent()  # torchrun puts ranks in their own sessions: a killed launcher must take them along
    lifetime.orphan_check(parent)
    spec = TrainingSpec.read(Path((argv or sys.argv[1:])[0]))
    rank = int(os.environ.get("RANK", "0"))
    progress.use(EventReporter() if rank == 0 else Silent())

    from tunesmith.training.sft import train_model

    trained = train_model(spec, ranks_dir=spec.ranks_dir)
    if rank == 0:
        spec.result_path.write_text(json.dumps(asdict(trained), indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
