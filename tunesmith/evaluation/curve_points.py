"""The points of a learning curve: the same method trained on nested subsets of the training split, each scored on
the same test examples, and the curve fitted through them (learning_curve.py)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.curation.records import read_examples, write_examples
from tunesmith.decision.stage import plan_context
from tunesmith.evaluation.learning_curve import CurveFit, fit_learning_curve, nested_subsets, plot_curve
from tunesmith.evaluation.test_set import load_test_set, score_test_set
from tunesmith.records import CuratedData, EvaluationResult, PreparedModel, TrainedModel, primary_metric
from tunesmith.report.markdown import markdown_table
from tunesmith.training.inference import load_trained
from tunesmith.training.plan import plan_training
from tunesmith.training.stage import run_training


@dataclass
class CurvePoint:
    fraction: float
    examples: int
    score: float
    per_example: list[float]
    train_s: float
    model_dir: str


def subset_data(data: CuratedData, indices: list[int], out_dir: Path) -> CuratedData:
    """The curated data with its training split cut to `indices` (validation and test unchanged)."""
    train = read_examples(Path(data.train_path))
    path = write_examples([train[i] for i in indices], out_dir / "train.jsonl")
    return replace(data, train_path=str(path), counts=data.counts | {"train": len(indices)})


def measure_point(
    config: RunConfig, data: CuratedData, model: PreparedModel, method: str, fraction: float, indices: list[int],
    out_dir: Path, run_id: str = "",
) -> CurvePoint:  # fmt: skip
    """Train `method` on the subset, as the pipeline would plan it for that many examples, and score it; `run_id`:
    the MLflow run the training is recorded under."""
    subset = subset_data(data, indices, out_dir)
    plan = plan_training(config.training, method, plan_context(config, subset, model))
    started = time.monotonic()
    trained = run_training(config, plan, subset, model, out_dir, run_id)
    train_s = trained.metrics.get("wall_s", 0.0) if trained.reused else time.monotonic() - started
    tests = load_test_set(config, subset)
    loaded, tokenizer = load_trained(model.path, trained.method, trained.output_dir, model.precision,
                                     model.trust_remote_code)  # fmt: skip
    scored = score_test_set(loaded, tokenizer, tests, config.evaluation.batch_size, perplexity=False)
    score = scored.metrics[primary_metric(tests.kind)]
    return CurvePoint(fraction, len(indices), float(score), scored.per_example, train_s, trained.output_dir)


def run_point(data: CuratedData, trained: TrainedModel, evaluation: EvaluationResult) -> CurvePoint:
    """A run's own training and evaluation as the curve's point at the whole training split."""
    score, per_example = evaluation.finetuned[evaluation.metric], evaluation.per_example["finetuned"]
    return CurvePoint(1.0, data.counts["train"], score, per_example, trained.metrics.get("wall_s", 0.0),
                      trained.output_dir)  # fmt: skip


def subsets_for(data: CuratedData, fractions: list[float], seed: int = 0) -> dict[float, list[int]]:
    """Nested subsets of the training split, stratified by label (or category), by share."""
    train = read_examples(Path(data.train_path))
    shares = sorted(fractions)
    return dict(zip(shares, nested_subsets([e.group for e in train], shares, seed), strict=True))


def schedule(fractions) -> list[float]:
    """The order the shares are trained in: the two smallest (cheap), the whole split, then the shares in between
    from the largest down, so that a fit that is already confident skips what costs most and tells least."""
    shares = sorted(fractions)
    return [*shares[:2], shares[-1], *reversed(shares[2:-1])]


def confident(points: list[CurvePoint], within: float | None) -> bool:
    """Is the score at twice the data already known to within `within` (half the 95% interval's width)?"""
    if within is None or len(points) < 3:
        return False
    curve = fit_points(points, None)
    return curve is not None and (curve.at_2x[2] - curve.at_2x[1]) / 2 <= within


def fit_points(points: list[CurvePoint], target: float | None) -> CurveFit | None:
    points = sorted(points, key=lambda p: p.examples)
    return fit_learning_curve([p.examples for p in points], [p.per_example for p in points], target=target)


def check_prediction(points: list[CurvePoint]) -> dict[str, float] | None:
    """How well the curve predicts: fitted without the largest point, its prediction for the largest point's size
    (twice the next largest, for the default shares) against what that point measured."""
    if len(points) < 4:
        return None
    points = sorted(points, key=lambda p: p.examples)
    last = points[-1]
    earlier = fit_learning_curve([p.examples for p in points[:-1]], [p.per_example for p in points[:-1]],
                                 at=(last.examples,))  # fmt: skip
    if earlier is None:
        return None
    estimate, low, high = earlier.at[last.examples]
    return {"examples": last.examples, "predicted": estimate, "low": low, "high": high, "measured": last.score,
            "inside": float(low <= last.score <= high)}  # fmt: skip


def write_curve(
    points: list[CurvePoint], curve: CurveFit | None, metric: str, out_dir: Path, skipped: list[float] = (),
) -> dict[str, Any]:  # fmt: skip
    """curve.json, curve.md and curve.png (when a curve could be fitted) in `out_dir`; the report, its markdown
    under "markdown". `skipped`: shares left untrained because the fit was already confident."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points = sorted(points, key=lambda p: p.examples)
    rows = [{k: v for k, v in asdict(p).items() if k != "per_example"} for p in points]
    check = check_prediction(points)
    report = {"metric": metric, "points": rows, "fit": asdict(curve) if curve else None, "check": check,
              "skipped": list(skipped)}  # fmt: skip
    table = [[p.examples, f"{p.fraction:.1%}", round(p.score, 3), round(p.train_s)] for p in points]
    lines = [f"# Learning curve ({metric})", "", markdown_table(["examples", "share", "test score", "training s"],
                                                                 table)]  # fmt: skip
    if curve is None:
        lines += ["", "Too few points, or the points do not follow a saturating curve: no prediction."]
    else:
        plot_curve(curve, out_dir / "curve.png", metric)
        largest = max(curve.sizes)
        (e2, l2, h2), (e4, l4, h4) = curve.at_2x, curve.at_4x
        lines += ["", f"Fitted {metric} = {curve.a:.3f} - {curve.b:.3g} n^-{curve.c:.3f}.",
                  f"- at {2 * largest} examples (2x): {e2:.3f} [{l2:.3f}, {h2:.3f}] (95%, {curve.resamples} "
                  "resamples of the test examples)",
                  f"- at {4 * largest} examples (4x): {e4:.3f} [{l4:.3f}, {h4:.3f}]",
                  "- " + ("plateaued: doubling the data is predicted to add less than 1 point"
                          if curve.plateaued else "not plateaued: more data is predicted to help")]  # fmt: skip
        if curve.needed_for_target is not None:
            need, low, high = curve.needed_for_target
            lines.append(
                f"- the target {curve.target}: not reachable on this curve (it levels off at {curve.a:.3f})"
                if need == float("inf")
                else f"- the target {curve.target}: about {need:.0f} examples [{low:.0f}, {high:.0f}]"
            )
    if skipped:
        shares = ", ".join(f"{share:.1%}" for share in skipped)
        lines += ["", f"Not trained: {shares} of the training split; the fit through the points above already "
                  "knew the score at 2x to within its confidence setting (evaluation.learning_curve."
                  "confident_within; null trains every share and checks the fit against the largest)."]  # fmt: skip
    if check is not None:
        lines += ["", f"Check: fitted without the largest point, the curve predicted {check['predicted']:.3f} "
                  f"[{check['low']:.3f}, {check['high']:.3f}] at {check['examples']} examples; measured "
                  f"{check['measured']:.3f} ({'inside' if check['inside'] else 'outside'} the interval)."]  # fmt: skip
    report["markdown"] = "\n".join(lines) + "\n"
    (out_dir / "curve.md").write_text(report["markdown"], encoding="utf-8")
    (out_dir / "curve.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report
