"""The decision stage as one plain function: measure baselines, estimate memory, apply the rules."""

from __future__ import annotations

from pathlib import Path

import psutil

from tunesmith.config import RunConfig
from tunesmith.config.schema import DecisionConfig, RagConfig
from tunesmith.curation.records import read_examples
from tunesmith.decision.baselines import Baseline, compare_best_prompts, few_shot_examples, measure_baselines
from tunesmith.decision.memory import estimate_all, workload_for
from tunesmith.decision.retrieval import BM25Retriever, EmbeddingRetriever, load_corpus
from tunesmith.decision.rules import decide, require_fit
from tunesmith.models.load import load_model
from tunesmith.models.shape import hidden_size, model_shape
from tunesmith.prompts import PromptTemplate, untrained_prompt
from tunesmith.records import CuratedData, DecisionRecord, PreparedModel
from tunesmith.training.distributed.launch_config import training_devices
from tunesmith.training.objectives import objective_for
from tunesmith.training.plan import PlanContext, plan_training


def available_memory(override_gb: float | None) -> tuple[float, str]:
    """Memory to plan training for: the configured figure, else GPU memory, else currently free RAM."""
    import torch

    if override_gb is not None:
        return override_gb, "decision.memory_gb"
    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        return total / 1e9, f"GPU memory of {torch.cuda.get_device_name(0)}"
    return psutil.virtual_memory().available / 1e9, "free RAM (no GPU)"


def retrievers_for(rag: RagConfig) -> list:
    if rag.corpus is None:
        return []
    passages = load_corpus(Path(rag.corpus), rag.chunk_words)
    builders = {"bm25": BM25Retriever, "embedding": lambda p: EmbeddingRetriever(p, rag.encoder)}
    return [builders[name](passages) for name in rag.retrievers]


def measure(
    data: CuratedData, model: PreparedModel, settings: DecisionConfig, system: str, seed: int
) -> list[Baseline]:
    """The baselines on the validation split (none when it is empty)."""
    validation = read_examples(Path(data.validation_path))[: settings.baselines.max_examples]
    if not validation:
        return []
    base, tokenizer = load_model(model.path, model.precision, model.trust_remote_code)
    train = read_examples(Path(data.train_path))
    shots, batch = settings.baselines.few_shot_k, settings.baselines.batch_size
    retrievers = retrievers_for(settings.rag)
    return measure_baselines(
        base,
        tokenizer,
        train,
        validation,
        system,
        data.labels,
        data.task_type,
        shots,
        batch,
        seed,
        retrievers,
        settings.rag.top_k,
    )


def fallback_template(data: CuratedData, settings: DecisionConfig, system: str, seed: int) -> dict:
    """The prompt to hand over when no baseline was measured (too few examples to hold any out): the system
    prompt with the training examples as demonstrations, as the guidance for tiny data advises."""
    train = read_examples(Path(data.train_path))
    shots = few_shot_examples(train, settings.baselines.few_shot_k, seed)
    return PromptTemplate(system, [[m for m in e.messages if m["role"] != "system"] for e in shots]).to_json()


def plan_context(config: RunConfig, data: CuratedData, model: PreparedModel) -> PlanContext:
    """What every training plan of this run is built against: the model, the curated data, the devices and the
    memory they offer (the configured figure, else GPU memory, else free RAM; CPU ranks share the machine's)."""
    on_gpu = model.precision.device == "cuda"
    devices = training_devices(config.training.distributed, on_gpu)
    memory_gb, source = available_memory(config.decision.memory_gb)
    if devices > 1 and not on_gpu:
        memory_gb, source = memory_gb / devices, f"{source}, shared by {devices} processes"
    return PlanContext(
        model_path=model.path,
        n_train=int(data.counts.get("train", 0)),
        max_seq_length=data.max_seq_length,
        max_seq_length_source=data.max_seq_length_source,
        estimate_seq_len=min(data.max_seq_length, int(data.token_stats.get("max") or data.max_seq_length)),
        mean_tokens=data.token_stats.get("mean") or None,
        hidden=hidden_size(model.path, model.trust_remote_code),
        dtype=model.precision.dtype,
        device=model.precision.device,
        devices=devices,
        budget_gb=memory_gb * config.decision.memory_headroom,
        budget_source=source,
        trust_remote_code=model.trust_remote_code,
        data_kind=data.task_type,
    )


def run_decision(
    data: CuratedData, model: PreparedModel, config: RunConfig, baselines: list[Baseline]
) -> DecisionRecord:
    """Memory estimates for every method, then the rules, on the measured baselines; with fine-tuning chosen, the
    training plan of the chosen method."""
    settings, context = config.decision, plan_context(config, data, model)
    system = untrained_prompt(config)
    # Every method's estimate under the objective the data trains with (DPO reads two replies per pair).
    objective = objective_for(config.training.objective, data.task_type).name
    training = config.training.model_copy(update={"objective": objective})
    workload = workload_for(training, context.dtype, context.estimate_seq_len, context.on_gpu, context.devices)
    shape = model_shape(model.path, model.trust_remote_code)
    estimates = estimate_all(shape, workload, budget_gb=context.budget_gb)
    available = context.budget_gb / settings.memory_headroom
    record = decide(
        data.counts["train_from_input"], settings, baselines, estimates, available, context.budget_source,
        config.training.method, fallback_template=fallback_template(data, settings, system, config.data.seed),
        task_type=data.task_type,
    )  # fmt: skip
    require_fit(record, settings)
    record.prompts_compared = compare_best_prompts(baselines, data.task_type)
    if record.method in estimates:
        record.plan = estimates[record.method].plan
    if not record.stop and record.method:
        record.training_plan = plan_training(config.training, record.method, context).to_json()
    return record
