"""The forgetting stage as plain functions: general-capability scores before training (cached per base model),
the same suite after, and the one place the change between them is computed (the pipeline's forgetting stage and
the comparison's per-method assessment both call run_forgetting)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.forgetting.base_scores import cached_scores, model_content_hash, save_scores, scores_key
from tunesmith.forgetting.benchmarks import choose_suite, lm_eval_batch_size, run_benchmarks
from tunesmith.forgetting.compare import compare_scores
from tunesmith.records import ForgettingReport, PreparedModel


@dataclass
class ForgettingResult:
    """After-training scores and their comparison with the baseline."""

    report: ForgettingReport
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]

    def headline(self) -> str:
        return self.report.headline()

    def summary_metrics(self) -> dict[str, float]:
        """What the comparison tables per method: the mean relative change (%), the flag, each accuracy after."""
        changes = [row["relative_change"] for row in self.report.per_benchmark.values()]
        return {
            "forgetting_change_pct": 100 * sum(changes) / len(changes) if changes else 0.0,
            "forgetting_flag": float(self.report.forgetting),
            **{f"forgetting_{name}_acc": row["after"] for name, row in self.report.per_benchmark.items()},
        }


def _score(config: RunConfig, model, tokenizer, suite: dict[str, Any], work_dir: Path) -> dict[str, dict[str, Any]]:
    f = config.forgetting
    return run_benchmarks(
        model, tokenizer, suite["benchmarks"], work_dir, f.limit, f.seed, suite["batch_size"], suite["harness"]
    )


def base_scores_cache(config: RunConfig) -> Path:
    return Path(config.output_dir).resolve() / "cache" / "forgetting"


def run_forgetting_baseline(
    config: RunConfig, model: PreparedModel, load_base: Callable[[], tuple[Any, Any]], work_dir: Path, run_id: str
) -> dict[str, Any]:
    """The base model's scores, fixing the suite for the after-training run. Scores computed before for the same
    model content, benchmark files, lm-eval version and settings are reused (unless orchestration.cache is off):
    `cached_from` names the run that computed them. `load_base` loads the model only when it must be scored."""
    f, device = config.forgetting, model.precision.device
    local, harness, why = choose_suite(f, device)
    suite = {"local": [b.name for b in local], "harness": harness, "why": why,
             "benchmarks": local, "batch_size": lm_eval_batch_size(f, device)}  # fmt: skip
    cache = base_scores_cache(config)
    key = scores_key(
        model_content_hash(model.path, cache), asdict(model.precision), suite, {b.name: str(b.path) for b in local},
        f.limit, f.seed,
    )  # fmt: skip
    hit = cached_scores(cache, key) if config.orchestration.cache else None
    if hit is not None:
        return {"suite": suite, "scores": hit["scores"], "cached_from": hit["run_id"], "key": key}
    base, tokenizer = load_base()
    scores = _score(config, base, tokenizer, suite, work_dir)
    save_scores(cache, key, scores, run_id)
    return {"suite": suite, "scores": scores, "cached_from": None, "key": key}


def run_forgetting(config: RunConfig, model, tokenizer, before: dict[str, Any], work_dir: Path) -> ForgettingResult:
    """The same benchmarks, limit and seed on a trained model, compared with the baseline."""
    after = _score(config, model, tokenizer, before["suite"], work_dir)
    f = config.forgetting
    report = compare_scores(before["scores"], after, f.threshold, f.require_significance)
    return ForgettingResult(report, before["scores"], after)
