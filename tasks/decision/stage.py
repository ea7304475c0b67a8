"""The decision stage as one plain function: measure baselines, estimate memory, apply the rules."""

from __future__ import annotations

from pathlib import Path

import psutil

from tasks.config import RunConfig
from tasks.curation.curate import CuratedData
from tasks.curation.records import read_examples
from tasks.decision.baselines import measure_baselines
from tasks.decision.memory import estimate_all, model_shape, workload_for
from tasks.decision.retrieval import BM25Retriever, EmbeddingRetriever, load_corpus
from tasks.decision.rules import DecisionRecord, decide
from tasks.models.load import load_model
from tasks.models.prepared import PreparedModel
from tasks.prompts import PromptTemplate, system_prompt


def available_memory(override_gb: float | None) -> tuple[float, str]:
    """Memory to plan training for: the configured figure, else GPU memory, else currently free RAM."""
    import torch

    if override_gb is not None:
        return override_gb, "decision.memory_gb"
    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        return total / 1e9, f"GPU memory of {torch.cuda.get_device_name(0)}"
    return psutil.virtual_memory().available / 1e9, "free RAM (no GPU)"


def retrievers_for(config: RunConfig) -> list:
    rag = config.decision.rag
    if rag.corpus is None:
        return []
    passages = load_corpus(Path(rag.corpus), rag.chunk_words)
    builders = {"bm25": BM25Retriever, "embedding": lambda p: EmbeddingRetriever(p, rag.encoder)}
    return [builders[name](passages) for name in rag.retrievers]


def make_decision(data: CuratedData, model: PreparedModel, config: RunConfig) -> DecisionRecord:
    settings = config.decision
    system = system_prompt(config.prompt.system, data.labels)
    train = read_examples(Path(data.train_path))
    validation = read_examples(Path(data.validation_path))[: settings.baselines.max_examples]
    baselines = []
    if validation:
        base, tokenizer = load_model(model.path, model.precision, model.trust_remote_code)
        baselines = measure_baselines(
            base, tokenizer, train, validation, system, data.labels, data.task_type,
            settings.baselines.few_shot_k, settings.baselines.batch_size, config.data.seed,
            retrievers_for(config), settings.rag.top_k,
        )  # fmt: skip
    seq_len = min(config.training.max_seq_length, int(data.token_stats.get("max") or config.training.max_seq_length))
    workload = workload_for(config.training, model.precision.dtype, seq_len, model.precision.device == "cuda")
    estimates = estimate_all(model_shape(model.path, model.trust_remote_code), workload)
    memory_gb, source = available_memory(settings.memory_gb)
    return decide(
        data.counts["train_from_input"], settings, baselines, estimates, memory_gb, source,
        config.training.method, fallback_template=PromptTemplate(system).to_json(),
    )  # fmt: skip
