"""The training spec: everything one training needs, written to the run folder for the processes that run it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import TrainingConfig
from tunesmith.records import Precision


@dataclass
class TrainingSpec:
    base_model: str
    train_path: str
    validation_path: str
    system: str
    training: dict[str, Any]  # TrainingConfig as JSON
    method: str
    precision: dict[str, str]
    out_dir: str
    trust_remote_code: bool = False
    checkpoint_dir: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    trial: dict[str, Any] | None = None  # a search trial's TrialRef: validation losses are reported to it

    @property
    def folder(self) -> Path:
        """Where the launch's own files go: the spec, the accelerate config, each rank's report, the result."""
        return Path(self.out_dir) / "distributed"

    @property
    def ranks_dir(self) -> Path:
        return self.folder / "ranks"

    @property
    def result_path(self) -> Path:
        return self.folder / "result.json"

    def training_config(self) -> TrainingConfig:
        return TrainingConfig.model_validate(self.training)

    def precision_record(self) -> Precision:
        return Precision(**self.precision)

    def write(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "spec.json"
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> TrainingSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
