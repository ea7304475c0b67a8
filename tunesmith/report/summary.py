"""The run summary: one markdown page covering every stage that ran."""

from __future__ import annotations

from tunesmith.decision.render import render_decision
from tunesmith.records import CuratedData, DecisionRecord, EvaluationResult, ForgettingReport, TrainedModel
from tunesmith.report.markdown import markdown_table


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
    parts += _curation(data) + [render_decision(decision, level=2), ""]
    if trained:
        parts += _training(trained)
    if evaluation:
        parts += _evaluation(evaluation)
    if forgetting:
        parts += _forgetting(forgetting)
    return "\n".join(parts)


def _curation(data: CuratedData) -> list[str]:
    parts = ["## Curation", "", markdown_table(["step", "rows"], [[k, v] for k, v in data.counts.items()]), ""]
    if data.labels:
        rows = [[s] + [c.get(label, 0) for label in data.labels] for s, c in data.class_counts.items()]
        parts += [markdown_table(["split", *data.labels], rows), ""]
    return parts + [f"Great Expectations: {data.validation['summary']}", ""]


def _training(trained: TrainedModel) -> list[str]:
    m = trained.metrics
    return [
        "## Training",
        "",
        f"{trained.method} in {trained.precision}: {int(m['steps'])} steps, {m['epochs']:.2f} epochs, "
        f"{m['wall_s']:.0f} s, {m['tokens_per_s']:.0f} tokens/s, peak RSS {m['peak_rss_mb']:.0f} MB, "
        f"trainable {int(m['trainable_params']):,} of {int(m['total_params']):,} parameters "
        f"({m['trainable_pct']:.2f}%); "
        f"final validation loss {m['final_eval_loss']:.4f}.",
        "",
    ]


def _evaluation(evaluation: EvaluationResult) -> list[str]:
    shared = [k for k in evaluation.base if k in evaluation.finetuned]
    rows = [[k, evaluation.base[k], evaluation.finetuned[k], evaluation.finetuned[k] - evaluation.base[k]]
            for k in shared]  # fmt: skip
    parts = [
        f"## Held-out evaluation ({evaluation.n_examples} test examples, {evaluation.task_type})",
        "",
        f"The base model is scored with its best prompt from the decision stage ({evaluation.base_prompt}).",
        "",
        markdown_table(["metric", "base model", "fine-tuned", "change"], rows),
        "",
    ]
    if evaluation.judge:
        judge = evaluation.judge
        parts += [
            f"LLM judge (1-5): base {judge['base']['judge_score']:.2f}, "
            f"fine-tuned {judge['finetuned']['judge_score']:.2f}.",
            "",
        ]
    return parts


def _forgetting(forgetting: ForgettingReport) -> list[str]:
    rows = [
        [name, r["before"], r["after"], r["absolute_change"], f"{100 * r['relative_change']:+.1f}%", r["p_value"],
         int(r["n"])]
        for name, r in forgetting.per_benchmark.items()
    ]  # fmt: skip
    verdict = (
        f"**Forgetting flagged** on {', '.join(forgetting.flagged)} "
        f"(relative drop over {forgetting.threshold:.0%}). "
        "Try: " + "; ".join(forgetting.recommendations)
        if forgetting.forgetting
        else f"No benchmark dropped more than {forgetting.threshold:.0%} (relative)."
    )
    header = ["benchmark", "before", "after", "change", "relative", "McNemar p", "n"]
    parts = ["## Forgetting", "", markdown_table(header, rows), "", verdict, ""]
    return parts + [f"- {note}" for note in forgetting.notes] + ([""] if forgetting.notes else [])
