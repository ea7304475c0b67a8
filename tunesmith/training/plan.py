"""The training plan: everything one training will use, and where each value came from, decided in one place.

`plan_training` builds it from the config's training section, what curation and the decision settled (the plan's
context) and any changes (a search trial's settings, a retraining's new rate), in named steps:

1. the config's settings with the changes applied,
2. the method's defaults where the config leaves a value unset (rate fitted to the model's width, epochs sized to
   the data),
3. the sequence length curation settled,
4. the memory check: the micro-batch, accumulation and checkpointing that fit the budget (the estimate's plan),
5. the step schedule those imply.

A plan derived from another (`derive`) goes through the same steps, so its memory is checked again: a search trial
under a decision that had to shrink the batch trains at the shrunk batch, and a trial whose settings cannot fit
fails before it loads anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from tunesmith.config.schema import TrainingConfig
from tunesmith.decision.memory import estimate, fit, workload_for
from tunesmith.errors import NotEnoughMemory
from tunesmith.models.shape import model_shape
from tunesmith.search.space import current_values, show_value, with_settings
from tunesmith.training import packing
from tunesmith.training.methods import METHODS
from tunesmith.training.objectives import OBJECTIVES, objective_for

MEMORY_KEYS = ("batch_size", "gradient_accumulation_steps", "gradient_checkpointing")
PACKED_KEYS = ("tokens_per_batch", "gradient_accumulation_steps", "gradient_checkpointing")


@dataclass(frozen=True)
class PlanContext:
    """What a plan is built against: the model, the curated data and the memory the decision found."""

    model_path: str
    n_train: int  # rows of the curated training split (replay and oversampled copies included)
    max_seq_length: int | None  # as curation settled it (None: as long as the examples are)
    max_seq_length_source: str = "set in the config"
    estimate_seq_len: int | None = None  # the longest example the memory check assumes; None: max_seq_length
    mean_tokens: float | None = None  # the examples' mean length in tokens (packed batches are sized by it)
    hidden: int | None = None  # the model's width, for the width-fitted learning rates
    dtype: str = "float32"
    device: str = "cpu"
    devices: int = 1  # processes training together, on all nodes
    budget_gb: float | None = None  # memory the training may use per device; None: not checked
    budget_source: str = ""
    trust_remote_code: bool = False
    data_kind: str = "classification"  # the curated data's task type (preference pairs train with DPO by default)

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"


@dataclass(frozen=True)
class TrainingPlan:
    method: str
    training: dict[str, Any]  # the resolved TrainingConfig (as JSON): what the run trains with
    schedule: dict[str, Any]  # world size, effective batch, steps per epoch, total steps, evaluation and saving
    sources: dict[str, str]  # setting -> default | width fit | data size | config | curation | memory plan | <change>
    memory: dict[str, Any]  # the estimate the plan was checked against (total_gb, budget_gb, fits, ...)
    context: PlanContext
    requested: dict[str, Any] = field(default_factory=dict)  # the settings the config's training section sets
    changes: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (settings, why), in order
    start_from: str | None = None  # trained weights the training continues (the champion's), else the base model

    @cached_property
    def settings(self) -> TrainingConfig:
        return TrainingConfig.model_validate(self.training)

    def hyperparameters(self) -> dict[str, Any]:
        """The values the run is logged with (MLflow params, the model's manifest)."""
        t = self.training
        keys = ("objective", "learning_rate", "epochs", "weight_decay", "batch_size", "gradient_accumulation_steps",
                "tokens_per_batch", "lr_scheduler", "warmup_ratio", "max_steps", "max_seq_length",
                "loss_on")  # fmt: skip
        anchored = {"l2_to_base": t["l2_to_base"]} if t.get("l2_to_base") else {}
        return {"method": self.method, **{k: t[k] for k in keys}, **anchored, **self.schedule}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingPlan:
        fields = dict(data)
        fields["context"] = PlanContext(**fields["context"])
        fields["changes"] = [(dict(settings), why) for settings, why in fields.get("changes", [])]
        return cls(**fields)

    def rows(self) -> list[tuple[str, str, str]]:
        """(setting, value, source) for the table `tunesmith decide` and the run's plan.md show."""
        shown = ("method", "objective", "learning_rate", "epochs", "weight_decay", "max_seq_length", "batch_size",
                 "tokens_per_batch", "gradient_accumulation_steps", "gradient_checkpointing")  # fmt: skip
        values = {"method": self.method, **self.training}
        rows = [(key, show_value(values[key]), self.sources.get(key, "default")) for key in shown]
        rows += [(k, show_value(v), "schedule (the settings over the data)") for k, v in self.schedule.items()]
        changed = [key for key in self.sources if key not in shown]
        rows += [(key, show_value(v), self.sources[key]) for key, v in current_values(values, changed).items()]
        return rows


def plan_training(
    training: TrainingConfig, method: str, context: PlanContext, changes: list[tuple[dict[str, Any], str]] = ()
) -> TrainingPlan:
    """The plan for `method` under `training` (the config's section) with `changes` applied in order."""
    # Only what the config sets: a derived plan rebuilt from it still tells the config's values from the defaults.
    requested = training.model_dump(mode="json", exclude_unset=True, exclude={"search"})
    settings, sources = _with_changes(training, changes)
    settings, sources = _method_defaults(settings, method, context, sources)
    settings = settings.model_copy(update={"max_seq_length": context.max_seq_length})
    sources["max_seq_length"] = f"curation ({context.max_seq_length_source})"
    settings, sources, memory = _fit_memory(settings, method, context, sources)
    resolved = settings.model_dump(mode="json", exclude={"search"})
    schedule = _schedule(settings, context)
    return TrainingPlan(method, resolved, schedule, sources, memory, context, requested, list(changes))


def derive(plan: TrainingPlan, settings: dict[str, Any], why: str, context: PlanContext | None = None) -> TrainingPlan:
    """The plan with `settings` changed (dotted keys as under training:, "method" included), built again from the
    config's section so that defaults follow a new method and memory is checked again; `context` replaces the
    plan's when the data changed (a retraining with replay mixed in)."""
    changes = [*plan.changes, (dict(settings), why)]
    method = settings.get("method", plan.method)
    derived = plan_training(TrainingConfig.model_validate(plan.requested), method, context or plan.context, changes)
    return replace(derived, start_from=plan.start_from)


def _with_changes(training: TrainingConfig, changes) -> tuple[TrainingConfig, dict[str, str]]:
    sources = {key: "config" for key in training.model_fields_set if key in TrainingConfig.model_fields}
    values = training.model_dump(mode="json")
    for settings, why in changes:
        plain = {k: v for k, v in settings.items() if k != "method"}
        values = with_settings(values, plain)
        sources |= {key: why for key in plain}
        if "method" in settings:
            sources["method"] = why
    return TrainingConfig.model_validate(values), sources


def _method_defaults(settings: TrainingConfig, method: str, context: PlanContext, sources: dict[str, str]):
    defaults = METHODS[method].defaults
    objective = objective_for(settings.objective, context.data_kind)
    update: dict[str, Any] = {"objective": objective.name}
    if settings.objective == "auto":
        sources["objective"] = f"the data ({context.data_kind})"
    if settings.learning_rate is None:
        rate = defaults.learning_rate_for(context.hidden)
        fitted = context.hidden is not None and rate != defaults.learning_rate
        sources["learning_rate"] = f"width fit (hidden {context.hidden})" if fitted else "method default"
        if objective.rate_scale != 1:
            rate = float(f"{rate * objective.rate_scale:.3g}")
            sources["learning_rate"] += f" x {objective.rate_scale:.3g} ({objective.name})"
        update["learning_rate"] = rate
    if settings.epochs is None:
        update["epochs"] = defaults.epochs_for(context.n_train)
        sources["epochs"] = f"data size ({context.n_train} examples)"
    if settings.weight_decay is None:
        update["weight_decay"] = defaults.weight_decay
        sources["weight_decay"] = "method default"
    return settings.model_copy(update=update), sources


def _fit_memory(settings: TrainingConfig, method: str, context: PlanContext, sources: dict[str, str]):
    """The micro-batch, accumulation and checkpointing that fit the budget; the estimate they were checked with."""
    seq_len = context.estimate_seq_len or context.max_seq_length or 0
    workload = workload_for(settings, context.dtype, seq_len, context.on_gpu, context.devices)
    # the accumulation an effective batch asks for, fixed from here on
    update = {"gradient_accumulation_steps": workload.gradient_accumulation_steps, "effective_batch_size": None}
    settings = settings.model_copy(update=update)
    request = packing.requested(settings.tokens_per_batch, context.device, settings.objective)
    if request is None:
        settings = settings.model_copy(update={"tokens_per_batch": "off"})
    else:
        return _fit_packed(settings, method, context, sources, request)
    if context.budget_gb is None:
        return settings, sources, {"checked": False}
    shape = model_shape(context.model_path, context.trust_remote_code)
    found = fit(method, shape, workload, context.budget_gb)
    memory = {"checked": True, "total_gb": round(found.total_gb, 3), "budget_gb": round(context.budget_gb, 3),
              "budget_source": context.budget_source, "fits": found.total_gb <= context.budget_gb,
              "seq_len": seq_len}  # fmt: skip
    if not memory["fits"]:
        raise NotEnoughMemory(
            f"{method} does not fit the {context.budget_gb:.1f} GB usable ({context.budget_source}) even at "
            f"micro-batch 1 with gradient checkpointing (about {found.total_gb:.1f} GB at the configured settings)",
            "training.method, training.max_seq_length, decision.memory_gb",
            "choose a method that trains fewer weights (lora, qlora), shorten training.max_seq_length, or train "
            "on a device with more memory",
        )
    update = {key: found.plan[key] for key in MEMORY_KEYS if found.plan[key] != getattr(settings, key)}
    sources |= {key: "memory plan" for key in update}
    return settings.model_copy(update=update), sources, memory


def _mean_tokens(context: PlanContext) -> float:
    return context.mean_tokens or context.max_seq_length or 1


def _fit_packed(settings: TrainingConfig, method: str, context: PlanContext, sources: dict[str, str],
                request: int | str):  # fmt: skip
    """The token budget of a packed micro-batch and the accumulation that keeps the effective batch: the largest
    budget that fits memory (without checkpointing if any does), as `fit` does for batches of examples."""
    per_step = packing.tokens_per_step(settings.batch_size, settings.gradient_accumulation_steps, _mean_tokens(context))
    options = packing.budgets(request, per_step, context.max_seq_length or 0)
    tried = [
        settings.model_copy(update={"tokens_per_batch": budget, "gradient_checkpointing": checkpointing,
                                    "gradient_accumulation_steps": packing.accumulation(per_step, budget)})
        for checkpointing in dict.fromkeys((settings.gradient_checkpointing, True))
        for budget in options
    ]  # fmt: skip
    why = "config" if request != "auto" else f"memory plan (one step holds about {per_step:.0f} tokens)"
    memory: dict[str, Any] = {"checked": False}
    chosen = tried[0]
    if context.budget_gb is not None:
        shape = model_shape(context.model_path, context.trust_remote_code)
        found = []
        for candidate in tried:
            workload = workload_for(candidate, context.dtype, 0, context.on_gpu, context.devices)
            found.append((candidate, estimate(method, shape, workload)))
            if found[-1][1].total_gb <= context.budget_gb:
                break
        chosen, best = found[-1]
        memory = {"checked": True, "total_gb": round(best.total_gb, 3), "budget_gb": round(context.budget_gb, 3),
                  "budget_source": context.budget_source, "fits": best.total_gb <= context.budget_gb,
                  "seq_len": int(chosen.tokens_per_batch), "packed": True}  # fmt: skip
        if not memory["fits"]:
            raise NotEnoughMemory(
                f"{method} does not fit the {context.budget_gb:.1f} GB usable ({context.budget_source}) with "
                f"micro-batches of {chosen.tokens_per_batch} tokens, even with gradient checkpointing (about "
                f"{best.total_gb:.1f} GB)",
                "training.tokens_per_batch, training.max_seq_length, training.method",
                "lower training.tokens_per_batch (down to the longest example), shorten training.max_seq_length, "
                "or choose a method that trains fewer weights (lora, qlora)",
            )
    changed = {key for key in PACKED_KEYS if getattr(chosen, key) != getattr(settings, key)}
    sources |= {key: why if key == "tokens_per_batch" else "memory plan" for key in changed}
    return chosen, sources, memory


def _schedule(settings: TrainingConfig, context: PlanContext) -> dict[str, Any]:
    """Steps implied by the settings: each of the world's processes takes batch_size examples per micro-step."""
    world = context.devices
    batch, accumulation = settings.batch_size, settings.gradient_accumulation_steps
    rows = context.n_train * OBJECTIVES[settings.objective].rows_per_example  # KTO: two rows per pair
    steps_per_epoch = max(1, math.ceil(rows / (batch * accumulation * world)))
    packed = isinstance(settings.tokens_per_batch, int)
    if packed:  # about: the trainer counts the packed micro-batches exactly once it has packed them
        budget = int(settings.tokens_per_batch)
        micro = packing.micro_batches(rows, _mean_tokens(context), budget)
        steps_per_epoch = max(1, math.ceil(micro / (accumulation * world)))
        batch = max(1, round(budget / _mean_tokens(context)))  # examples a micro-batch holds, about
    total_steps = settings.max_steps if settings.max_steps > 0 else math.ceil(settings.epochs * steps_per_epoch)
    eval_steps = settings.eval_steps or max(1, math.ceil(min(steps_per_epoch, total_steps) / 2))
    return {
        "effective_batch_size": batch * accumulation * world,
        "world_size": world,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "eval_steps": eval_steps,
        "save_steps": settings.save_steps or eval_steps,
        **({"tokens_per_step": budget * accumulation * world} if packed else {}),
    }


def with_world_size(plan: TrainingPlan, world: int) -> TrainingPlan:
    """The plan as a process of a `world`-process job sees it (the launcher may start a different count)."""
    if world == plan.context.devices:
        return plan
    context = replace(plan.context, devices=world)
    return replace(plan, context=context, schedule=_schedule(plan.settings, context))
