"""Measure one trained method (or the untrained base model) the way every other method is measured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.evaluation.scoring import generate
from tunesmith.evaluation.test_set import TestSet, score_test_set
from tunesmith.forgetting.stage import Scorable, run_forgetting, trained_scorable
from tunesmith.models.load import load_model
from tunesmith.prompts import PromptTemplate, prompt_messages
from tunesmith.records import MethodResult, PreparedModel, TrainedModel, primary_metric
from tunesmith.training.inference import load_trained
from tunesmith.training.methods import METHODS

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def reply_length(tests: TestSet, tokenizer) -> int:
    """Tokens per timed reply: the longest reference answer and two more."""
    lengths = (len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in tests.examples)
    return max(lengths, default=8) + 2


def weights_size_mb(folder: str | Path) -> float:
    """What has to be stored and shipped per task: weight files only, not the tokenizer or the manifest."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.suffix in WEIGHT_SUFFIXES) / 2**20


def latency_ms(model, tokenizer, tests: TestSet, n: int, warmup: int = 2) -> float:
    """Mean wall time to answer one request (greedy, batch of one) over the first n test examples.

    Every reply is exactly reply_length tokens long (the longest reference answer + 2), so that methods are timed
    on the same work: a model that stops early, or one that rambles, would otherwise look faster or slower
    for reasons that have nothing to do with its adapter."""
    prompts = [prompt_messages(e, tests.system) for e in tests.examples[: n + warmup]]
    length = reply_length(tests, tokenizer)
    for prompt in prompts[:warmup]:
        generate(model, tokenizer, [prompt], length, batch_size=1, min_new_tokens=length)
    timed = prompts[warmup:] or prompts
    start = time.perf_counter()
    for prompt in timed:
        generate(model, tokenizer, [prompt], length, batch_size=1, min_new_tokens=length)
    return 1000 * (time.perf_counter() - start) / len(timed)


def _quality(model, tokenizer, config: RunConfig, tests: TestSet, template: PromptTemplate | None = None):
    with progress.bar("test set", len(tests.examples), "examples"):
        scored = score_test_set(model, tokenizer, tests, config.evaluation.batch_size, template)
    metrics = {f"test_{k}": v for k, v in scored.metrics.items() if not k.startswith(("precision_", "recall_"))}
    return metrics | {"test_n": float(len(tests.examples))}


def _forgetting_change(config: RunConfig, tuned: Scorable, before: dict[str, Any] | None, work_dir: Path):
    """Mean relative change (%) over the forgetting benchmarks, and whether any was flagged."""
    if before is None:
        return {}
    return run_forgetting(config, tuned, before, work_dir).summary_metrics()


def assess_base(config: RunConfig, model: PreparedModel, tests: TestSet, before, out_dir: Path) -> MethodResult:
    """The untrained model with the zero-shot prompt: the floor every method should clear."""
    base, tokenizer = load_model(model.path, model.precision, model.trust_remote_code)
    metrics = _quality(base, tokenizer, config, tests, PromptTemplate(tests.untrained_system))
    metrics["latency_ms_unmerged"] = latency_ms(base, tokenizer, tests, config.comparison.latency_examples)
    if before is not None:
        metrics["forgetting_change_pct"] = 0.0
    metrics |= {"trainable_pct": 0.0, "trainable_params": 0.0}
    return MethodResult("base", "base", "no training: the zero-shot prompt", metrics, primary(tests.kind))


def assess_trained(
    config: RunConfig, model: PreparedModel, trained: TrainedModel, tests: TestSet, before, out_dir: Path
) -> MethodResult:
    """Quality, forgetting and latency of the model as trained (adapter attached), then latency merged."""
    t = trained.metrics
    metrics = {
        "trainable_pct": t["trainable_pct"],
        "trainable_params": t["trainable_params"],
        "peak_memory_mb": t.get("peak_gpu_mb", t["peak_rss_above_idle_mb"]),
        "train_wall_s": t["wall_s"],
        "tokens_per_s": t["tokens_per_s"],
        "best_eval_loss": t["best_eval_loss"],
        "adapter_size_mb": weights_size_mb(trained.output_dir),
    }
    n = config.comparison.latency_examples
    loaded, tokenizer = load_trained(
        model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code, merge=False
    )
    metrics |= _quality(loaded, tokenizer, config, tests)
    metrics["latency_ms_unmerged"] = latency_ms(loaded, tokenizer, tests, n)
    # The HF backend scores the model in memory; vLLM loads its own copy and sizes its cache from the free memory.
    kept = (loaded, tokenizer) if before is not None and before["suite"]["backend"] == "hf" else None
    del loaded
    work_dir = out_dir / "benchmarks"
    metrics |= _forgetting_change(
        config, trained_scorable(model, trained, work_dir, config.forgetting.vllm.lora, kept), before, work_dir
    )
    del kept
    if METHODS[trained.method].can_merge:
        merged, tokenizer = load_trained(
            model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code, merge=True
        )
        metrics["latency_ms_merged"] = latency_ms(merged, tokenizer, tests, n)
        del merged
    return MethodResult(trained.method, "trained", "", metrics, primary(tests.kind), trained.output_dir)


def primary(kind: str) -> str:
    return f"test_{primary_metric(kind)}"
