"""The report stage as a plain function: the run's markdown summary, its one-line outcome and the headline
figures that go on the parent run for side-by-side comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.promotion.gate import task_gate_text
from tunesmith.records import (
    CuratedData,
    DecisionRecord,
    EvaluationResult,
    ForgettingReport,
    PromotionDecision,
    TrainedModel,
)
from tunesmith.report.summary import render_summary


@dataclass
class ReportResult:
    path: str
    summary: str
    outcome: str
    headline: dict[str, float] = field(default_factory=dict)


def run_report(
    config: RunConfig, data: CuratedData, decision: DecisionRecord, out_dir: Path,
    trained: TrainedModel | None = None, evaluation: EvaluationResult | None = None,
    forgetting: ForgettingReport | None = None, promotion: PromotionDecision | None = None,
    attempts: list[dict[str, Any]] | None = None, curve: str | None = None,
) -> ReportResult:  # fmt: skip
    outcome = _outcome(decision, evaluation, forgetting, promotion, config.promotion.min_improvement)
    summary = render_summary(
        config.name, config.model, data, decision, trained, evaluation, forgetting, outcome, attempts, curve
    )
    path = Path(out_dir) / "summary.md"
    path.write_text(summary, encoding="utf-8")
    headline = {f"data_{k}": float(v) for k, v in data.counts.items()}
    if trained:
        headline |= {f"train_{k}": v for k, v in trained.metrics.items()}
    if evaluation:
        headline |= {f"base_{k}": v for k, v in evaluation.base.items()}
        headline |= {f"finetuned_{k}": v for k, v in evaluation.finetuned.items()}
    if forgetting:
        headline |= {
            f"forgetting_{n}_relative_change": r["relative_change"] for n, r in forgetting.per_benchmark.items()
        }
        headline["forgetting_flag"] = float(forgetting.forgetting)
        headline |= {f"forgetting_pooled_{k}": forgetting.pooled[k] for k in ("difference", "low", "high", "n")}
    return ReportResult(str(path), summary, outcome, headline)


def _outcome(
    decision: DecisionRecord,
    evaluation: EvaluationResult | None,
    forgetting: ForgettingReport | None,
    promotion: PromotionDecision | None,
    min_improvement: float = 0.0,
) -> str:
    if decision.stop:
        return f"stopped before training: {decision.decision.replace('_', ' ')} is the recommended approach"
    parts = [f"fine-tuned ({decision.method})"]
    if evaluation and evaluation.change and not promotion:
        reference = f"the base model's best prompt ({evaluation.base_prompt})"
        parts.append(task_gate_text(evaluation.metric, evaluation.change, reference, min_improvement))
    if forgetting and not promotion:
        parts.append(f"forgetting: {forgetting.headline()}")
    if promotion:
        parts.append(f"{promotion.state_name.lower()}: {promotion.reason}")
    return "; ".join(parts)
