"""The comparison table: one row per method, as markdown, CSV and a PNG chart."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from tunesmith.records import MethodResult
from tunesmith.report.markdown import markdown_table

# (column title, metric name, decimals); the metric names are those logged on every method's MLflow run.
COLUMNS = [
    ("trainable %", "trainable_pct", 4),
    ("peak memory MB", "peak_memory_mb", 0),
    ("train wall s", "train_wall_s", 1),
    ("tokens/s", "tokens_per_s", 1),
    ("{metric}", "{metric}", 3),
    ("95% CI", "{metric}_ci", None),
    ("quality vs full %", "quality_vs_full_pct", 1),
    ("forgetting change %", "forgetting_change_pct", 1),
    ("adapter MB", "adapter_size_mb", 2),
    ("latency ms (unmerged)", "latency_ms_unmerged", 1),
    ("latency ms (merged)", "latency_ms_merged", 1),
]


def add_quality_vs_full(results: list[MethodResult]) -> str | None:
    """Each row's task metric as a percentage of full fine-tuning's; returns why not, when it cannot be done."""
    full = next((r for r in results if r.method == "full" and r.status == "trained"), None)
    if full is None:
        return "full fine-tuning was not run (or failed), so there is no reference for quality vs full"
    reference = full.metrics.get(full.task_metric)
    if not reference:
        return f"full fine-tuning scored {reference} on {full.task_metric}: no meaningful reference"
    for row in results:
        if row.task_metric in row.metrics:
            row.metrics["quality_vs_full_pct"] = 100.0 * row.metrics[row.task_metric] / reference
    return None


def rows(results: list[MethodResult]) -> list[dict[str, Any]]:
    """Plain rows (column title -> value or None), in the order the results came."""
    metric = next((r.task_metric for r in results if r.task_metric), "task metric")
    table = []
    for result in results:
        row: dict[str, Any] = {"method": result.method, "status": result.status}
        for title, key, decimals in COLUMNS:
            if decimals is None:
                row[title] = interval(
                    result.metrics.get(metric),
                    result.metrics.get("test_n"),
                    metric,
                    result.metrics.get(f"{metric}_ci_low"),
                    result.metrics.get(f"{metric}_ci_high"),
                )
                continue
            value = result.metrics.get(key.format(metric=metric))
            ok = value is not None and not (isinstance(value, float) and math.isnan(value))
            row[title.format(metric=metric.removeprefix("test_"))] = round(value, decimals) if ok else None
        row["note"] = result.reason
        table.append(row)
    return table


def interval(
    value: float | None, n: float | None, metric: str, low: float | None = None, high: float | None = None
) -> str | None:
    """The 95% interval of a metric on n test examples ("0.71-0.84"): `low`-`high` when scoring gave them (the
    bootstrap interval of a mean score such as ROUGE-L), else the Wilson interval of an accuracy; None otherwise."""
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        return f"{low:.3f}-{high:.3f}"
    if value is None or not n or not metric.endswith("accuracy"):
        return None
    from scipy.stats import binomtest

    ci = binomtest(round(value * n), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{ci.low:.3f}-{ci.high:.3f}"


def to_markdown(table: list[dict[str, Any]]) -> str:
    if not table:
        return ""
    headers = list(table[0])
    return markdown_table(headers, [[_cell(row[h]) for h in headers] for row in table]) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:,.1f}"
    return str(value).replace("|", "/")


def write_csv(table: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return path


def plot(results: list[MethodResult], path: Path) -> Path:
    """Four panels: quality vs full, trainable share (log scale), peak training memory, inference latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [r for r in results if r.status in ("trained", "base")]
    names = [r.method for r in shown]
    x = np.arange(len(names))

    def values(key: str) -> list[float]:
        return [r.metrics.get(key, np.nan) for r in shown]

    metric = next((r.task_metric for r in shown if r.task_metric), "")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    quality = values("quality_vs_full_pct")
    has_full = not all(np.isnan(quality))
    ax = axes[0, 0]
    ax.bar(x, quality if has_full else values(metric), color="tab:blue")
    ax.set_title("quality vs full fine-tuning (%)" if has_full else metric.removeprefix("test_"))
    if has_full:
        ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax = axes[0, 1]
    ax.bar(x, [max(v, 1e-4) if not np.isnan(v) else np.nan for v in values("trainable_pct")], color="tab:green")
    ax.set_yscale("log")
    ax.set_title("trainable parameters (%)")
    ax = axes[1, 0]
    ax.bar(x, values("peak_memory_mb"), color="tab:orange")
    ax.set_title("peak training memory (MB)")
    ax = axes[1, 1]
    ax.bar(x - 0.2, values("latency_ms_unmerged"), width=0.4, label="as trained", color="tab:purple")
    ax.bar(x + 0.2, values("latency_ms_merged"), width=0.4, label="merged", color="tab:pink")
    ax.set_title("inference latency per example (ms)")
    ax.legend()
    for ax in axes.flat:
        ax.set_xticks(x, names, rotation=30)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# What the comparison is about, one chart each: (metric key, title); the task metric comes first.
CHARTS = [
    ("quality_vs_full_pct", "quality vs full fine-tuning (%)"),
    ("forgetting_change_pct", "forgetting: mean change on the general benchmarks (%)"),
    ("peak_memory_mb", "peak training memory (MB)"),
    ("train_wall_s", "training wall time (s)"),
    ("latency_ms_unmerged", "latency per request, as trained (ms)"),
]


def metric_charts(results: list[MethodResult], out_dir: Path) -> list[Path]:
    """One bar chart per compared quantity, methods side by side, for the comparison's parent run: what a person
    looks at first, without choosing axes in MLflow's compare view. Quantities no method has are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.status in ("trained", "base")]
    metric = next((r.task_metric for r in shown if r.task_metric), "")
    charts = [(metric, metric.removeprefix("test_").replace("_", " ") + " on the test split"), *CHARTS]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (key, title) in enumerate(charts):
        pairs = [(r.method, r.metrics[key]) for r in shown if r.metrics.get(key) is not None]
        if not key or not pairs:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bars = ax.bar([m for m, _ in pairs], [v for _, v in pairs], color="tab:blue")
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{i}_{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
