"""The run summary: one markdown page covering every stage that ran."""

from __future__ import annotations

from typing import Any

from tunesmith.decision.render import render_decision
from tunesmith.records import CuratedData, DecisionRecord, EvaluationResult, ForgettingReport, TrainedModel


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_summary(
    name: str,
    model: str,
    data: CuratedData,
    decision: DecisionRecord,
    trained: TrainedModel | None = None,
    evaluation: EvaluationResult | None = None,
    forgetting: ForgettingReport | None = None,
    outcome: str = "",
) -> str:
    """Markdown summary of a pipeline run."""
    parts = [f"# Tunesmith run: {name}", "", f"Model: `{model}`", ""]
    if outcome:
        parts += [f"**Outcome:** {outcome}", ""]
    parts += ["## Curation", "", _table(["step", "rows"], [[k, v] for k, v in data.counts.items()]), ""]
    if data.labels:
        parts += [
            _table(
                ["split"] + data.labels,
                [[s] + [c.get(label, 0) for label in data.labels] for s, c in data.class_counts.items()],
            ),
            "",
        ]
    parts += [f"Great Expectations: {data.validation['summary']}", ""]
    parts += [render_decision(decision, level=2), ""]
    if trained:
        m = trained.metrics
        parts += [
            "## Training",
            "",
            f"{trained.method} in {trained.precision}: {int(m['steps'])} steps, {m['epochs']:.2f} epochs, "
            f"{m['wall_s']:.0f} s, {m['tokens_per_s']:.0f} tokens/s, peak RSS {m['peak_rss_mb']:.0f} MB, "
            f"trainable {int(m['trainable_params']):,} of {int(m['total_params']):,} parameters "
            f"({m['trainable_pct']:.2f}%); "
            f"final validation loss {m['final_eval_loss']:.4f}.",
            "",
        ]
    if evaluation:
        shared = [k for k in evaluation.base if k in evaluation.finetuned]
        parts += [
            f"## Held-out evaluation ({evaluation.n_examples} test examples, {evaluation.task_type})",
            "",
            f"The base model is scored with its best prompt from the decision stage ({evaluation.base_prompt}).",
            "",
            _table(
                ["metric", "base model", "fine-tuned", "change"],
                [
                    [k, evaluation.base[k], evaluation.finetuned[k], evaluation.finetuned[k] - evaluation.base[k]]
                    for k in shared
                ],
            ),
            "",
        ]
        if evaluation.judge:
            judge = evaluation.judge
            parts += [
                f"LLM judge (1-5): base {judge['base']['judge_score']:.2f}, "
                f"fine-tuned {judge['finetuned']['judge_score']:.2f}.",
                "",
            ]
    if forgetting:
        rows = [
            [
                name,
                r["before"],
                r["after"],
                r["absolute_change"],
                f"{100 * r['relative_change']:+.1f}%",
                r["p_value"],
                int(r["n"]),
            ]
            for name, r in forgetting.per_benchmark.items()
        ]
        verdict = (
            f"**Forgetting flagged** on {', '.join(forgetting.flagged)} "
            f"(relative drop over {forgetting.threshold:.0%}). "
            "Try: " + "; ".join(forgetting.recommendations)
            if forgetting.forgetting
            else f"No benchmark dropped more than {forgetting.threshold:.0%} (relative)."
        )
        parts += [
            "## Forgetting",
            "",
            _table(["benchmark", "before", "after", "change", "relative", "McNemar p", "n"], rows),
            "",
            verdict,
            "",
        ]
        parts += [f"- {note}" for note in forgetting.notes] + ([""] if forgetting.notes else [])
    return "\n".join(parts)
