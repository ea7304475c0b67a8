"""Learning-curve tasks: one point per nested subset of the training split, then the fitted curve."""

from pathlib import Path

from prefect import task

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.evaluation.curve_points import (
    CurvePoint,
    confident,
    fit_points,
    measure_point,
    run_point,
    schedule,
    subsets_for,
    write_curve,
)
from tunesmith.records import CuratedData, EvaluationResult, PreparedModel, TrainedModel, primary_metric
from tunesmith.stages import Stage
from tunesmith.tasks.orchestration import HOUR, SERVICE_RETRIES
from tunesmith.tracking.mlflow_runs import RunRef, log_artifact, log_json, log_metrics, log_params, stage_run


def point_stage(fraction: float) -> str:
    """A point's stage: its MLflow child run, run folder and console line."""
    return f"curve-{fraction:.1%}".replace("%", "pct")


def measure_curve(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, method: str,
    known: list[CurvePoint] = (),
) -> tuple[list[CurvePoint], list[float]]:  # fmt: skip
    """The curve's points in schedule order (`known`: points already measured, a run's own training), stopping
    once the fit is confident; the points and the shares skipped."""
    settings = config.evaluation.learning_curve
    subsets = subsets_for(data, settings.fractions, config.data.seed)
    points, order = list(known), schedule(settings.fractions)
    for i, fraction in enumerate(order):
        if any(p.fraction == fraction for p in points):
            continue
        if confident(points, settings.confident_within):
            return points, sorted(f for f in order[i:] if all(p.fraction != f for p in points))
        points.append(curve_point_task(run, config, data, model, method, fraction, subsets[fraction]))
    return points, []


@task(name="curve-point", timeout_seconds=24 * HOUR)
def curve_point_task(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, method: str, fraction: float,
    indices: list[int],
) -> CurvePoint:  # fmt: skip
    detail = f"{method} on {len(indices)} examples ({fraction:.1%} of the training split)"
    with stage_run(run, point_stage(fraction), detail) as child:
        point = measure_point(config, data, model, method, fraction, indices, Path(child.out_dir), child.run_id)
        log_params(child, {"method": method, "fraction": fraction, "examples": point.examples})
        log_metrics(child, {"test_score": point.score, "train_s": point.train_s})
        progress.done(f"test score {point.score:.3f} after {point.train_s:.0f} s of training")
    return point


@task(name="curve-report", **SERVICE_RETRIES)
def curve_report_task(
    run: RunRef, config: RunConfig, data: CuratedData, points: list[CurvePoint], skipped: list[float] = (),
) -> dict:  # fmt: skip
    """The fitted curve: its predictions with intervals on the parent run, curve.md/png/json in its folder."""
    with progress.stage(Stage.CURVE):
        out_dir = Path(run.stage_dir(Stage.CURVE))
        curve = fit_points(points, config.decision.target)
        report = write_curve(points, curve, primary_metric(data.task_type), out_dir, skipped)
        if curve is not None:
            (e2, l2, h2), (e4, l4, h4) = curve.at_2x, curve.at_4x
            log_metrics(run, {"curve_at_2x": e2, "curve_at_2x_low": l2, "curve_at_2x_high": h2, "curve_at_4x": e4,
                              "curve_at_4x_low": l4, "curve_at_4x_high": h4, "curve_ceiling": curve.a,
                              "curve_plateaued": float(curve.plateaued)})  # fmt: skip
        log_json(run, report, "curve/curve.json")
        for name in ("curve.md", "curve.png"):
            if (out_dir / name).is_file():
                log_artifact(run, out_dir / name, "curve")
        progress.done(str(out_dir / "curve.md"))
    return report


def curve_of_run(
    run: RunRef, config: RunConfig, data: CuratedData, model: PreparedModel, trained: TrainedModel,
    evaluation: EvaluationResult,
) -> str | None:  # fmt: skip
    """`evaluation.learning_curve` in a run: the run's training is the whole split's point, the smaller shares are
    trained with the same method; the curve's markdown for the summary (None when the setting is off)."""
    if not config.evaluation.learning_curve.enabled:
        return None
    # a training that continued the champion is not a point of a curve trained from the base model
    known = [] if config.retraining.start_from == "champion" else [run_point(data, trained, evaluation)]
    points, skipped = measure_curve(run, config, data, model, trained.method, known)
    return curve_report_task(run, config, data, points, skipped)["markdown"]
