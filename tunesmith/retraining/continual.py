"""Continual retraining from the champion (retraining.start_from: champion): when new data arrives, the registered
champion's weights train on the examples it has not seen plus a replay sample of those it has, instead of the base
model on everything; and the new model is checked against the champion on the champion's own test split, so that
what it knew is not traded for what arrived.

The champion's splits come back from the registry (each version logs the curated splits it was trained and tested
on, tracking/registration.py), so a retraining on another machine keeps them: its test examples stay test examples
(nothing it was scored on is trained on), and its training examples are told apart from new ones by their ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.curation.records import read_examples, write_examples
from tunesmith.errors import DataError
from tunesmith.evaluation.learning_curve import nested_subsets
from tunesmith.evaluation.metrics import paired_change
from tunesmith.forgetting.verdict import FORGETTING, INCONCLUSIVE, NO_FORGETTING, benchmark_verdict
from tunesmith.records import OLD_TASK, CuratedData, ForgettingReport, PreparedModel, TrainedModel
from tunesmith.statistics.paired import smallest_detectable_difference
from tunesmith.training.plan import TrainingPlan, derive

SHAPE_SECTIONS = ("lora", "qlora", "adapter", "prefix", "prompt_tuning", "ia3", "spectrum")


@dataclass
class Champion:
    """The registered version a retraining continues."""

    name: str
    version: str
    method: str
    model_dir: str  # the trained folder (adapter or whole model) with its manifest
    data_dir: str  # its train/validation/test.jsonl
    base_model: str  # the config's model spec it was trained from
    shape: dict[str, Any]  # its method's settings (LoRA rank, targets, ...), which the continued weights must keep

    @property
    def label(self) -> str:
        return f"{self.name} version {self.version}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_champion(client, tracking_uri: str, name: str, alias: str, cache_dir: Path) -> Champion | None:
    """The version holding `alias`, its model and splits downloaded under `cache_dir/<name>-<version>` (kept: the
    same champion's files serve every later run); None when no version holds it."""
    import mlflow

    from tunesmith.models.manifest import read_manifest
    from tunesmith.promotion.champion import current_champion
    from tunesmith.serving.package import trained_folder
    from tunesmith.tracking.registration import DATA_ARTIFACTS
    from tunesmith.tracking.registry import download_model

    version = current_champion(client, name, alias)
    if version is None:
        return None
    folder = cache_dir / f"{name}-{version.version}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / DATA_ARTIFACTS / "test.jsonl").is_file():
        try:
            mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=DATA_ARTIFACTS,
                                                dst_path=str(folder), tracking_uri=tracking_uri)  # fmt: skip
        except Exception as err:  # MLflow raises its own and OSError kinds for a missing artifact
            raise DataError(
                f"the champion ({name} version {version.version}) has no curated splits in the registry (it was "
                "registered before versions kept them), so a retraining cannot continue it: run once with "
                "retraining.start_from: base, and later runs can continue the champion that run makes"
            ) from err
    model_dir = trained_folder(download_model(f"models:/{name}/{version.version}", tracking_uri))
    manifest = read_manifest(model_dir)
    training = manifest.get("training", {})
    return Champion(name, str(version.version), manifest["method"], str(model_dir), str(folder / DATA_ARTIFACTS),
                    manifest.get("model_spec") or manifest["base_model"],
                    {k: training[k] for k in SHAPE_SECTIONS if isinstance(training.get(k), dict)})  # fmt: skip


def check_continuable(champion: Champion, model_spec: str, method: str) -> None:
    """A champion continues only on its own base model and as its own method."""
    if champion.base_model != model_spec:
        raise DataError(
            f"retraining.start_from: champion: the champion ({champion.label}) was trained from "
            f"'{champion.base_model}' and this config's model is '{model_spec}'; its weights cannot continue on "
            "another base. Set retraining.start_from: base to train the new model from scratch"
        )
    if method not in ("auto", champion.method):
        raise DataError(
            f"retraining.start_from: champion: the champion ({champion.label}) is a {champion.method} model and "
            f"training.method is {method}; continue it as {champion.method} (training.method: auto) or set "
            "retraining.start_from: base"
        )


def continuing(config: RunConfig, champion: Champion) -> RunConfig:
    """The config a continued retraining runs with: the champion's method (the decision then plans it)."""
    check_continuable(champion, config.model, config.training.method)
    continued = config.model_copy(deep=True)
    continued.training.method = champion.method
    return continued


def from_champion(plan: TrainingPlan, champion: Champion) -> TrainingPlan:
    """The plan continuing the champion's weights, with its method's settings (a LoRA of another rank could not
    take them)."""
    shape = {f"{section}.{key}": value for section, values in champion.shape.items() for key, value in values.items()}
    continued = derive(plan, {"method": champion.method, **shape}, f"continuing the champion ({champion.label})")
    return replace(continued, start_from=champion.model_dir)


def continual_train(
    data: CuratedData, champion: Champion, replay_fraction: float, seed: int, out_dir: Path
) -> tuple[CuratedData, dict[str, int]]:
    """The curated data with its training split cut to the examples the champion did not train on, plus a
    stratified sample of those it did (`replay_fraction` of the task's examples; a share rounds per label); the
    counts of each."""
    seen = {e.id.split("~")[0] for e in read_examples(Path(champion.data_dir) / "train.jsonl")}
    train = read_examples(Path(data.train_path))
    old = [e for e in train if e.id.split("~")[0] in seen]
    new = [e for e in train if e.id.split("~")[0] not in seen]
    fresh = sum(e.origin == "task" for e in new)  # the rest of `new` is general-domain replay (data.replay)
    if not fresh:
        raise DataError(
            f"retraining.start_from: champion: every training example was already in the champion's ({champion.label}) "
            "training split, so there is nothing new to continue on. Add data, or set retraining.start_from: base "
            "to retrain with changed settings"
        )
    wanted = min(len(old), round(fresh * replay_fraction / (1 - replay_fraction)))
    replayed = []
    if wanted:
        (chosen,) = nested_subsets([e.group for e in old], [wanted / len(old)], seed)
        replayed = [old[i] for i in chosen]
    path = write_examples(new + replayed, out_dir / "train.jsonl")
    counts = {"new": fresh, "general": len(new) - fresh, "replayed": len(replayed),
              "not_replayed": len(old) - len(replayed)}  # fmt: skip
    return replace(data, train_path=str(path), counts=data.counts | {"train": len(new) + len(replayed)}), counts


def old_task_row(kind: str, champion_scores: list[float], new_scores: list[float], threshold: float) -> dict:
    """The new model against the champion on the champion's test split: the paired change with its interval,
    judged as a forgetting benchmark is (a drop beyond `threshold` of the champion's score)."""
    difference = paired_change(kind, champion_scores, new_scores)
    margin = threshold * difference.before
    detectable = (  # the smallest drop these examples detect; for scores on a scale, the interval says it
        smallest_detectable_difference(difference.n, difference.changed, difference.confidence)
        if difference.changed is not None else float("nan")
    )  # fmt: skip
    return {"before": difference.before, "after": difference.after, "absolute_change": difference.difference,
            "relative_change": difference.difference / difference.before if difference.before else 0.0,
            "difference": difference.difference, "low": difference.low, "high": difference.high,
            "confidence": difference.confidence, "margin": margin, "p_value": difference.p_value,
            "changed": difference.changed or 0.0, "n": difference.n, "detectable_drop": detectable,
            "verdict": benchmark_verdict(difference, margin)}  # fmt: skip


def score_old_task(
    config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel, champion: Champion
) -> dict:
    """The champion and the new model on the champion's test split (each with the prompt it was trained on): the
    old task's row of the forgetting report, its verdict under "verdict"."""
    import gc

    from tunesmith.evaluation.test_set import load_split_file, score_test_set
    from tunesmith.models.manifest import read_manifest
    from tunesmith.prompts import PromptTemplate
    from tunesmith.training.inference import load_trained

    tests = load_split_file(config, data, str(Path(champion.data_dir) / "test.jsonl"))
    scores = []
    for method, folder in ((champion.method, champion.model_dir), (trained.method, trained.output_dir)):
        loaded, tokenizer = load_trained(model.path, method, folder, model.precision, model.trust_remote_code)
        template = PromptTemplate(read_manifest(folder).get("system", tests.system))
        scored = score_test_set(loaded, tokenizer, tests, config.evaluation.batch_size, template, perplexity=False)
        scores.append(scored.per_example)
        del loaded
        gc.collect()
    return old_task_row(tests.kind, scores[0], scores[1], config.forgetting.threshold)


def with_old_task(report: ForgettingReport, row: dict, champion: Champion) -> ForgettingReport:
    """The forgetting report with the old task added: it forgets when either the general suite or the old task
    does, and clears only when both do (an old task that cannot be told apart leaves the run inconclusive)."""
    verdict = row.pop("verdict")
    overall = (
        FORGETTING if FORGETTING in (report.verdict, verdict)
        else NO_FORGETTING if report.verdict == verdict == NO_FORGETTING else INCONCLUSIVE
    )  # fmt: skip
    note = (
        f"The old task is the champion's ({champion.label}) test split: {int(row['n'])} examples, "
        f"{row['before']:.3f} (champion) -> {row['after']:.3f} (this model), {verdict}."
    )
    recommendations = report.recommendations + (
        ["replay more of the champion's training examples (retraining.replay_fraction)"]
        if verdict == FORGETTING else []
    )  # fmt: skip
    return replace(report, per_benchmark=report.per_benchmark | {OLD_TASK: row},
                   verdicts=report.verdicts | {OLD_TASK: verdict}, verdict=overall,
                   recommendations=recommendations, notes=[*report.notes, note])  # fmt: skip
