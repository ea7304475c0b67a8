"""The records stages hand to each other: plain dataclasses every stage may import, with no behaviour beyond
describing themselves (headline, to_json). Prefect persists them between tasks, so their fields are the contract
between stages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

Decision = Literal["prompting", "few_shot_prompting", "rag", "finetune"]


def change_text(change: dict[str, Any]) -> str:
    """A paired difference (PairedDifference.to_json) in points with its interval, e.g. "+62.5 points [48.1,
    73.2] (95%)"."""
    return (
        f"{100 * change['difference']:+.1f} points [{100 * change['low']:+.1f}, {100 * change['high']:+.1f}] "
        f"({change['confidence']:.0%})"
    )


def primary_metric(task_type: str) -> str:
    """The number a run is judged by: accuracy for classification, field accuracy for JSON, the share of pairs
    whose chosen reply the model finds more likely for preferences, the mean per-example F1 of the label sets for
    multi-label classification (a per-example score, so two models compare paired), ROUGE-L otherwise."""
    return {
        "classification": "accuracy", "json": "field_accuracy", "preference": "preference_accuracy",
        "multilabel": "samples_f1",
    }.get(task_type, "rougeL")  # fmt: skip


@dataclass(frozen=True)
class Precision:
    device: str
    dtype: str  # "float32" | "bfloat16" | "float16"
    reason: str

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)


@dataclass(frozen=True)
class PreparedModel:
    path: str
    precision: Precision
    trust_remote_code: bool = False

    def headline(self) -> str:
        return f"{self.precision.dtype} on {self.precision.device}: {self.precision.reason}"


@dataclass(frozen=True)
class Example:
    """One training example as chat messages, with a stable content id and where it came from."""

    id: str
    messages: list[dict[str, str]]
    source: str
    label: str | None = None
    category: str | None = None
    origin: str = "task"  # "replay" marks general-domain data mixed in against forgetting; never scored
    rejected: str | None = None  # preference pairs: the reply people liked less than `answer`
    labels: list[str] | None = None  # multi-label classification: every label that applies ([] when none does)

    @property
    def group(self) -> str | None:
        """What splits are stratified and classes balanced by: the label, else the category."""
        return self.label if self.label is not None else self.category

    @property
    def target(self) -> str | None:
        """What a labelled example must be answered with: its label, or its label set as the answer spells it;
        None for unlabelled data."""
        return self.label if self.labels is None else self.answer

    @property
    def prompt_text(self) -> str:
        """The user-side text (everything but the final assistant answer)."""
        return "\n".join(m["content"] for m in self.messages[:-1] if m["role"] != "system")

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Example:
        return cls(**row)


@dataclass
class CuratedData:
    """What curation hands on: split files, counts, and the checks that passed or failed."""

    task_type: str  # "classification" or "generation"
    data_format: str
    labels: list[str] | None
    train_path: str
    validation_path: str
    test_path: str
    rejects_path: str
    report_path: str
    data_hash: str
    counts: dict[str, int]
    rejected_by_kind: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    balance: dict[str, Any]
    validation: dict[str, Any]
    token_stats: dict[str, float] = field(default_factory=dict)  # chat-formatted tokens of the kept examples
    max_seq_length: int = 256  # what training uses: training.max_seq_length, or derived from the data
    max_seq_length_source: str = ""
    ignored_fields: dict[str, int] = field(default_factory=dict)  # input fields the format does not read -> rows
    docs_dir: str | None = None
    clusters_path: str | None = None
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # anything here stops the pipeline

    @property
    def ok(self) -> bool:
        return not self.problems

    def headline(self) -> str:
        """One line for the console: what was kept, the splits, and the checks."""
        c = self.counts
        duplicates = c["exact_duplicates"] + c["near_duplicates"] + c["semantic_duplicates"]
        gx = "GX suite passed" if self.validation.get("success") else "GX suite failed"
        line = (
            f"{c['kept_unique']} of {c['read']} rows kept ({c['rejected_invalid']} rejected, {duplicates} duplicates);"
            f" splits {c['train']}/{c['validation']}/{c['test']}; max_seq_length {self.max_seq_length}"
            f"{' (derived)' if self.max_seq_length_source.startswith('derived') else ''}; {gx}"
        )
        return line + (f"; {len(self.warnings)} thing(s) to look at in the report" if self.warnings else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Rule:
    name: str
    fired: bool
    evidence: str


@dataclass
class DecisionRecord:
    decision: Decision
    method: str | None
    rules: list[Rule] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory_available_gb: float | None = None
    memory_source: str = ""
    winning_template: dict[str, Any] | None = None
    winning_baseline: str | None = None
    best_template: dict[str, Any] | None = None  # the best measured prompt: what the base model is judged with
    best_baseline: str | None = None
    overridden: bool = False
    would_have_chosen: dict[str, Any] | None = None
    # How the chosen method trains to fit memory: micro-batch, accumulation, checkpointing, strategy, devices.
    plan: dict[str, Any] | None = None
    # Everything the training will use and where each value came from (tunesmith/training/plan.py TrainingPlan).
    training_plan: dict[str, Any] | None = None
    prompts_compared: str = ""  # the best baseline against the runner-up, paired, on the validation examples
    search: dict[str, Any] | None = None  # the hyperparameter search before training (search.study.SearchResult)

    @property
    def stop(self) -> bool:
        """True when the pipeline ends here, without training."""
        return self.decision != "finetune"

    def headline(self) -> str:
        """One line for the console: the choice and the measured baselines behind it."""
        scores = ", ".join(f"{b['name'].replace('_', '-')} {b['score']:.2f}" for b in self.baselines)
        fired = next((r.name for r in reversed(self.rules) if r.fired), "")
        why = f" ({fired.replace('_', ' ')})" if fired and not self.overridden else ""
        objective = (self.training_plan or {}).get("training", {}).get("objective", "sft")
        how = self.method if objective == "sft" else f"{self.method} ({objective})"
        choice = (
            f"fine-tune with {how}" if not self.stop
            else f"stop: {self.decision.replace('_', ' ')} recommended{why}"
        )  # fmt: skip
        forced = " (set in the config)" if self.overridden else ""
        tie = "; the two best prompts cannot be told apart" if self.prompts_compared.endswith("told apart") else ""
        return f"{choice}{forced}" + (f"; base model {self.baselines[0]['metric']}: {scores}{tie}" if scores else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"stop": self.stop}


@dataclass
class TrainedModel:
    base_model: str
    output_dir: str  # adapter weights, or a whole model for full/spectrum
    method: str
    precision: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    loss_curve_path: str | None = None
    can_merge: bool = False
    merged_dir: str | None = None
    registered: dict[str, str] | None = None  # {"name", "version"} in the MLflow model registry
    record_dir: str | None = None  # where the training's record is kept for reuse by a rerun
    trained_in_run: str | None = None  # the pipeline run that trained it
    reused: bool = False  # this run reuses a training finished by an earlier run of the same inputs

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> str:
        """One line for the console: steps, validation loss, speed and the registered version."""
        m = self.metrics
        evals = [h["eval_loss"] for h in self.history if "eval_loss" in h]
        loss = f"best validation loss {m['best_eval_loss']:.3f}" if evals else f"training loss {m['train_loss']:.3f}"
        line = f"{int(m['steps'])} steps, {loss}, {m['tokens_per_s']:.0f} tokens/s"
        if self.reused:
            line = f"reused the training of run {self.trained_in_run} (same inputs): " + line
        if self.registered:
            line += f"; registered {self.registered['name']} version {self.registered['version']}"
        return line


@dataclass
class Scored:
    metrics: dict[str, float]
    predictions: list[str]
    per_example: list[float] = field(default_factory=list)  # the primary metric, example by example
    # Preference pairs: "chosen" and "rejected", each reply's log-likelihood per example (for reward margins).
    log_likelihoods: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    task_type: str  # classification | json | generation
    n_examples: int
    base: dict[str, float]
    finetuned: dict[str, float]
    base_prompt: str  # which baseline's prompt the base model was scored with
    predictions_path: str = ""
    artifacts: list[str] = field(default_factory=list)
    judge: dict[str, Any] | None = None
    per_example: dict[str, list[float]] = field(default_factory=dict)  # "base", "finetuned": the primary metric
    change: dict[str, Any] = field(default_factory=dict)  # fine-tuned - base on the same examples (PairedDifference)
    next_data: list[str] = field(default_factory=list)  # what to collect next, ranked (evaluation/next_data.py)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def metric(self) -> str:
        return primary_metric(self.task_type)

    def headline(self) -> str:
        """One line for the console: the main metric, base (best prompt) against fine-tuned."""
        key = self.metric
        line = (
            f"{key} {self.base[key]:.3f} (base, {self.base_prompt.replace('_', '-')} prompt) -> "
            f"{self.finetuned[key]:.3f} (fine-tuned) on {self.n_examples} test examples"
        )
        return line + (f", {change_text(self.change)}" if self.change else "")


OLD_TASK = "old_task"  # a continued retraining's row of the forgetting report: the champion's test split


@dataclass
class ForgettingReport:
    """General-benchmark scores before and after training, judged on the same questions (forgetting/verdict.py):
    per benchmark and pooled, the change with its interval, the margin the threshold sets at that baseline, the
    smallest drop the questions can detect, and `forgetting`, `no forgetting` or `inconclusive`."""

    threshold: float  # relative: 0.05 is a drop of 5% of the base model's accuracy
    per_benchmark: dict[str, dict[str, float]]  # before, after, absolute/relative change, low, high, margin, ...
    verdicts: dict[str, str] = field(default_factory=dict)
    pooled: dict[str, float] = field(default_factory=dict)  # the same figures over every question of the suite
    pooled_verdict: str = ""
    verdict: str = "no forgetting"
    recommendations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def forgetting(self) -> bool:
        return self.verdict == "forgetting"

    @property
    def flagged(self) -> list[str]:
        """The benchmarks found to have forgotten, or "all benchmarks pooled" when only the pooled suite was; then
        a continued retraining's old task when it forgot (the pooled suite is the general benchmarks only)."""
        forgot = [name for name, verdict in self.verdicts.items() if verdict == "forgetting"]
        general = [name for name in forgot if name != OLD_TASK]
        general = general or (["all benchmarks pooled"] if self.pooled_verdict == "forgetting" else [])
        return general + [name for name in forgot if name == OLD_TASK]

    def headline(self) -> str:
        """One line: the verdict, the pooled change with its interval against the threshold's margin, and which
        benchmarks dropped (or, when inconclusive, the smallest drop these questions could have seen)."""
        p = self.pooled
        line = (
            f"{self.verdict}: {int(p['n'])} questions {p['before']:.3f} -> {p['after']:.3f}, "
            f"{change_text(p)}, threshold -{100 * p['margin']:.1f} points"
        )
        flagged = [n for n, v in self.verdicts.items() if v == "forgetting" and n != OLD_TASK]  # its own clause
        if flagged:
            line += "; dropped: " + ", ".join(f"{n} {change_text(self.per_benchmark[n])}" for n in flagged)
        if self.verdict == "inconclusive":
            line += f"; these questions detect drops of {100 * p['detectable_drop']:.1f} points or more"
        if OLD_TASK in self.per_benchmark:
            old = self.per_benchmark[OLD_TASK]
            line += (f"; old task (the champion's test split, {int(old['n'])} examples) {old['before']:.3f} -> "
                     f"{old['after']:.3f}, {change_text(old)}, threshold -{100 * old['margin']:.1f} points: "
                     f"{self.verdicts[OLD_TASK]}")  # fmt: skip
        return line

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"forgetting": self.forgetting, "flagged": self.flagged}


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    new_score: float
    reference: str  # what the new model was compared with
    reference_score: float
    model: str = ""
    version: str = ""
    change: dict[str, Any] = field(default_factory=dict)  # new - reference on the same test examples
    forgetting_verdict: str = ""
    task_gate: str = ""  # one line each: what the two gates found
    forgetting_gate: str = ""

    @property
    def state_name(self) -> str:
        return "Promoted" if self.promoted else "Not promoted"

    def headline(self) -> str:
        return f"{self.model} version {self.version}: {self.state_name.lower()}, {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"state": self.state_name}


@dataclass
class MethodResult:
    """One row of the comparison. `metrics` uses the same names for every method, so MLflow lines them up."""

    method: str
    status: str  # trained | base | skipped | failed
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    task_metric: str = ""
    trained_dir: str | None = None
    run_id: str | None = None  # the method's MLflow child run

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> str:
        m = self.metrics
        parts = [f"{self.task_metric.removeprefix('test_')} {m[self.task_metric]:.3f}"] if self.task_metric in m else []
        if "trainable_pct" in m and self.status == "trained":
            parts.append(f"{m['trainable_pct']:.3g}% trainable")
        if "train_wall_s" in m:
            parts.append(f"trained in {m['train_wall_s']:.0f} s")
        return ", ".join(parts) or self.reason
