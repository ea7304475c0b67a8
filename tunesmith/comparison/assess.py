"""Measure one trained method (or the untrained base model) the way every other method is measured."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.curation.curate import CuratedData
from tunesmith.curation.records import Example
from tunesmith.evaluation.evaluate import answer_perplexity, load_test_examples, score_with_template, task_type
from tunesmith.evaluation.metrics import primary_metric
from tunesmith.evaluation.scoring import generate
from tunesmith.forgetting.benchmarks import run_benchmarks
from tunesmith.forgetting.compare import compare_scores
from tunesmith.models.load import load_model
from tunesmith.models.prepared import PreparedModel
from tunesmith.prompts import PromptTemplate, prompt_messages, system_prompt
from tunesmith.training.inference import load_trained
from tunesmith.training.methods import METHODS
from tunesmith.training.sft import TrainedModel

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


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


@dataclass
class TestSet:
    """The test examples and how they are scored: fixed once, shared by every method."""

    examples: list[Example]
    kind: str
    schema: dict[str, Any] | None
    system: str
    labels: list[str] | None
    max_new_tokens: int


def test_set(config: RunConfig, data: CuratedData, tokenizer) -> TestSet:
    settings = config.evaluation
    examples = load_test_examples(data.test_path, settings.max_examples)
    kind = settings.task if settings.task != "auto" else task_type(data.labels, examples)
    schema = json.loads(Path(settings.json_schema).read_text()) if settings.json_schema else None
    longest = max((len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples), default=8)
    return TestSet(examples, kind, schema, system_prompt(config.prompt.system, data.labels), data.labels, longest + 2)


def weights_size_mb(folder: str | Path) -> float:
    """What has to be stored and shipped per task: weight files only, not the tokenizer or the manifest."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.suffix in WEIGHT_SUFFIXES) / 2**20


def latency_ms(model, tokenizer, tests: TestSet, n: int, warmup: int = 2) -> float:
    """Mean wall time to answer one request (greedy, batch of one) over the first n test examples.

    Every reply is exactly max_new_tokens long (the longest reference answer + 2), so that methods are timed
    on the same work: a model that stops early, or one that rambles, would otherwise look faster or slower
    for reasons that have nothing to do with its adapter."""
    prompts = [prompt_messages(e, tests.system) for e in tests.examples[: n + warmup]]
    length = tests.max_new_tokens
    for prompt in prompts[:warmup]:
        generate(model, tokenizer, [prompt], length, batch_size=1, min_new_tokens=length)
    timed = prompts[warmup:] or prompts
    start = time.perf_counter()
    for prompt in timed:
        generate(model, tokenizer, [prompt], length, batch_size=1, min_new_tokens=length)
    return 1000 * (time.perf_counter() - start) / len(timed)


def _quality(model, tokenizer, config: RunConfig, tests: TestSet) -> dict[str, float]:
    batch = config.evaluation.batch_size
    with progress.bar("test set", len(tests.examples), "examples"):
        scored = score_with_template(
            model, tokenizer, tests.examples, PromptTemplate(tests.system), tests.labels, batch, None, tests.kind,
            tests.schema,
        )  # fmt: skip
    metrics = {f"test_{k}": v for k, v in scored.metrics.items() if not k.startswith(("precision_", "recall_"))}
    metrics["test_perplexity"] = answer_perplexity(model, tokenizer, tests.examples, tests.system, batch)
    return metrics


def _forgetting_change(config: RunConfig, model, tokenizer, before: dict[str, Any] | None, work_dir: Path):
    """Mean relative change (%) over the forgetting benchmarks, and whether any was flagged."""
    if before is None:
        return {}
    f = config.forgetting
    local = [b for b in f.benchmarks if b.name in before["suite"]["local"]]
    after = run_benchmarks(model, tokenizer, local, work_dir, f.limit, f.seed, f.batch_size, before["suite"]["harness"])
    report = compare_scores(before["scores"], after, f.threshold, f.require_significance)
    changes = [row["relative_change"] for row in report.per_benchmark.values()]
    return {
        "forgetting_change_pct": 100 * sum(changes) / len(changes) if changes else 0.0,
        "forgetting_flag": float(report.forgetting),
        **{f"forgetting_{name}_acc": row["after"] for name, row in report.per_benchmark.items()},
    }


def assess_base(config: RunConfig, model: PreparedModel, tests: TestSet, before, out_dir: Path) -> MethodResult:
    """The untrained model with the zero-shot prompt: the floor every method should clear."""
    base, tokenizer = load_model(model.path, model.precision, model.trust_remote_code)
    metrics = _quality(base, tokenizer, config, tests)
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
    metrics |= _forgetting_change(config, loaded, tokenizer, before, out_dir / "benchmarks")
    del loaded
    if METHODS[trained.method].can_merge:
        merged, tokenizer = load_trained(
            model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code, merge=True
        )
        metrics["latency_ms_merged"] = latency_ms(merged, tokenizer, tests, n)
        del merged
    return MethodResult(trained.method, "trained", "", metrics, primary(tests.kind), trained.output_dir)


def primary(kind: str) -> str:
    return f"test_{primary_metric(kind)}"
