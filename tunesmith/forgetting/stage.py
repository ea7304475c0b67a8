"""The forgetting stage as plain functions: general-capability scores before training, the same suite after, and
the one place the change between them is computed (the pipeline's forgetting stage and the comparison's
per-method assessment both call run_forgetting)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.forgetting.benchmarks import choose_suite, run_benchmarks
from tunesmith.forgetting.compare import compare_scores
from tunesmith.records import ForgettingReport


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
    local = [b for b in f.benchmarks if b.name in suite["local"]]
    return run_benchmarks(model, tokenizer, local, work_dir, f.limit, f.seed, f.batch_size, suite["harness"])


def run_forgetting_baseline(config: RunConfig, model, tokenizer, work_dir: Path) -> dict[str, Any]:
    """The base model's scores, taken before training; the suite is fixed here for the after-training run."""
    f = config.forgetting
    local, harness, why = choose_suite(f.suite, f.benchmarks, f.harness_tasks)
    suite = {"local": [b.name for b in local], "harness": harness, "why": why}
    return {"suite": suite, "scores": _score(config, model, tokenizer, suite, work_dir)}


def run_forgetting(config: RunConfig, model, tokenizer, before: dict[str, Any], work_dir: Path) -> ForgettingResult:
    """The same benchmarks, limit and seed on a trained model, compared with the baseline."""
    after = _score(config, model, tokenizer, before["suite"], work_dir)
    f = config.forgetting
    report = compare_scores(before["scores"], after, f.threshold, f.require_significance)
    return ForgettingResult(report, before["scores"], after)
