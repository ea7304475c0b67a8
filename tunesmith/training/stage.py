"""The training stage as a plain function: one training plan carried out on the curated splits, resumable, and
cached.

A training is identified by its inputs: the curated training and validation files, the plan (method and every
setting), the prompt, the base model and Tunesmith's code version. Its record (metrics, history, where the model
is, the registered version) is kept under output_dir/cache/training and the model in the folder of the run
that trained it, so a run that failed after training (evaluation, forgetting, promotion, report) reruns from
there instead of training again, and its model version is not registered twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.prompts import training_prompt
from tunesmith.records import CuratedData, PreparedModel, TrainedModel
from tunesmith.training.distributed.launch_config import resolved_processes, visible_gpus
from tunesmith.training.distributed.launcher import launch_training
from tunesmith.training.distributed.spec import TrainingSpec
from tunesmith.training.objectives import OBJECTIVES
from tunesmith.training.plan import TrainingPlan, derive
from tunesmith.training.sft import train_model
from tunesmith.versioning import code_version

RECORD = "trained.json"


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else ""


def training_key(config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel) -> str:
    """A hash of everything a training's result depends on."""
    key = json.dumps(
        {"model": model.path, "model_spec": config.model, "method": plan.method, "training": plan.training,
         "schedule": plan.schedule, "start_from": plan.start_from,
         "prompt": training_prompt(config),
         "train": _file_hash(data.train_path), "validation": _file_hash(data.validation_path),
         "code": code_version()},
        sort_keys=True,
    )  # fmt: skip
    return f"{config.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def checkpoint_dir(config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel) -> Path:
    """Where an interrupted run of the same plan, data and model leaves checkpoints for the next one."""
    return Path(config.output_dir).resolve() / "checkpoints" / training_key(config, plan, data, model)


def result_dir(config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel) -> Path:
    """Where the record of the finished training of these inputs is kept (the model stays in its run's folder)."""
    return Path(config.output_dir).resolve() / "cache" / "training" / training_key(config, plan, data, model)


def cached_training(folder: Path) -> TrainedModel | None:
    """The training finished earlier in `folder`, if its record and model are still there."""
    record = folder / RECORD
    if not record.is_file():
        return None
    trained = TrainedModel(**json.loads(record.read_text(encoding="utf-8")))
    return trained if Path(trained.output_dir).is_dir() else None


def save_record(trained: TrainedModel) -> None:
    """Keep the training's record (with its registered version, once it has one) beside its model."""
    if trained.record_dir:
        record = Path(trained.record_dir) / RECORD
        record.write_text(json.dumps(replace(trained, reused=False).to_json(), indent=2), encoding="utf-8")


def train(spec: TrainingSpec) -> TrainedModel:
    """One training from its spec: in this process, or launched over several when a strategy is set."""
    distributed = spec.training_config().distributed
    if distributed.active:
        gpus = visible_gpus() if spec.precision["device"] == "cuda" else 0
        return launch_training(spec, distributed, resolved_processes(distributed, gpus))
    return train_model(spec)


def _supervised_stage(
    config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel, out_dir: Path, run_id: str
) -> TrainedModel | None:
    """training.preference.sft_first: supervised fine-tuning on the chosen replies (at the method's supervised rate),
    which the preference stage then continues from and takes as its reference. Cached like any training."""
    objective = plan.training["objective"]
    # ORPO holds its own supervised term; a reference-free objective has nothing to start a reference from.
    if not OBJECTIVES[objective].needs_reference or not plan.training["preference"]["sft_first"]:
        return None
    supervised = derive(plan, {"objective": "sft", "learning_rate": None}, f"the supervised stage before {objective}")
    return run_training(config, supervised, data, model, out_dir / "supervised", run_id)


def run_training(
    config: RunConfig, plan: TrainingPlan, data: CuratedData, model: PreparedModel, out_dir: Path, run_id: str,
    trial: dict | None = None,
) -> TrainedModel:  # fmt: skip
    """Carry out `plan` on the curated splits; the same inputs trained before are reused (unless
    orchestration.cache is off), and an interrupted attempt with the same inputs is resumed. `trial`: the
    search trial (tunesmith/search/pruning.py TrialRef) the validation losses are reported to."""
    folder = result_dir(config, plan, data, model)
    done = cached_training(folder) if config.orchestration.cache else None
    if done is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        link = out_dir / "model"
        if not link.exists():
            link.symlink_to(done.output_dir, target_is_directory=True)  # where users look for a run's model
        return replace(done, reused=True)
    folder.mkdir(parents=True, exist_ok=True)
    first = _supervised_stage(config, plan, data, model, out_dir, run_id)
    spec = TrainingSpec(
        base_model=model.path,
        train_path=data.train_path,
        validation_path=data.validation_path,
        system=training_prompt(config),
        plan=plan.to_json(),
        precision=asdict(model.precision),
        out_dir=str(out_dir),
        trust_remote_code=model.trust_remote_code,
        checkpoint_dir=str(checkpoint_dir(config, plan, data, model)),
        manifest={
            "labels": data.labels,
            "task_type": data.task_type,
            "data_hash": data.data_hash,
            "run_id": run_id,
            "model_spec": config.model,
        },
        trial=trial,
        start_from=first.output_dir if first else plan.start_from,
    )
    trained = train(spec)
    if first is not None:
        trained.metrics |= {f"supervised_{k}": first.metrics[k] for k in ("steps", "train_loss", "wall_s")}
    trained = replace(trained, record_dir=str(folder), trained_in_run=run_id)
    save_record(trained)
    return trained
