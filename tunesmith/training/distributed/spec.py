"""The training spec: the plan of one training and where it reads and writes, written to the run folder for the
processes that run it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import TrainingConfig
from tunesmith.curation.records import read_examples
from tunesmith.models.shape import hidden_size
from tunesmith.records import Precision
from tunesmith.training.distributed.launch_config import training_devices
from tunesmith.training.packing import requested
from tunesmith.training.plan import PlanContext, TrainingPlan, plan_training


@dataclass
class TrainingSpec:
    base_model: str
    train_path: str
    validation_path: str
    system: str
    plan: dict[str, Any]  # TrainingPlan as JSON: the method and every setting the training uses
    precision: dict[str, str]
    out_dir: str
    trust_remote_code: bool = False
    checkpoint_dir: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    trial: dict[str, Any] | None = None  # a search trial's TrialRef: validation losses are reported to it
    # A trained model this training continues from (a supervised stage before DPO): its adapter, or its whole model.
    start_from: str | None = None

    @classmethod
    def for_files(
        cls, base_model: str, train_path: str, validation_path: str, system: str, training: TrainingConfig,
        method: str, precision: Precision, out_dir: str | Path, **job: Any,
    ) -> TrainingSpec:  # fmt: skip
        """A training of two files outside a pipeline run (benchmarks, notebooks): planned from the settings
        alone, the sequence length as training.max_seq_length says and memory not checked."""
        examples = read_examples(Path(train_path))
        kind = "preference" if examples and examples[0].rejected is not None else "generation"
        packs = kind != "preference" and requested(training.tokens_per_batch, precision.device, "sft") is not None
        context = PlanContext(
            model_path=base_model,
            n_train=len(examples),
            data_kind=kind,
            mean_tokens=_mean_tokens(base_model, examples, system, training) if packs else None,
            max_seq_length=training.max_seq_length,
            hidden=hidden_size(base_model, job.get("trust_remote_code", False)),
            dtype=precision.dtype,
            device=precision.device,
            devices=training_devices(training.distributed, precision.device == "cuda"),
        )
        plan = plan_training(training, method, context)
        if job.get("checkpoint_dir") is not None:
            job["checkpoint_dir"] = str(job["checkpoint_dir"])
        return cls(base_model, train_path, validation_path, system, plan.to_json(), asdict(precision), str(out_dir),
                   **job)  # fmt: skip

    @property
    def method(self) -> str:
        return self.plan["method"]

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

    def training_plan(self) -> TrainingPlan:
        return TrainingPlan.from_json(self.plan)

    def training_config(self) -> TrainingConfig:
        return self.training_plan().settings

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


def _mean_tokens(base_model: str, examples, system: str, training: TrainingConfig) -> float | None:
    """The examples' mean length as the trainer tokenizes them (packed micro-batches are sized by it)."""
    from tunesmith.models.load import load_tokenizer
    from tunesmith.prompts import full_messages
    from tunesmith.training.tokenize import tokenize_conversation

    if not examples:
        return None
    tokenizer = load_tokenizer(base_model)
    lengths = [len(tokenize_conversation(tokenizer, full_messages(e, system), training.loss_on,
                                         training.max_seq_length)["input_ids"]) for e in examples]  # fmt: skip
    return sum(lengths) / len(lengths)
