"""The run summary: one markdown page covering every stage that ran."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesmith.decision.render import render_decision
from tunesmith.records import (
    OLD_TASK,
    CuratedData,
    DecisionRecord,
    EvaluationResult,
    ForgettingReport,
    TrainedModel,
    change_text,
)
from tunesmith.report.markdown import markdown_table, shorten


def render_summary(
    name: str,
    model: str,
    data: CuratedData,
    decision: DecisionRecord,
    trained: TrainedModel | None = None,
    evaluation: EvaluationResult | None = None,
    forgetting: ForgettingReport | None = None,
    outcome: str = "",
    attempts: list[dict[str, Any]] | None = None,
    curve: str | None = None,
) -> str:
    """Markdown summary of a pipeline run; `curve`: the learning curve's own markdown (curve_points.write_curve)."""
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
    if attempts:
        parts += _attempts(attempts, evaluation.metric if evaluation else "")
    if curve:
        parts += ["#" + curve, ""]  # its title one level down, under the run's
    return "\n".join(parts)


def _attempts(attempts: list[dict[str, Any]], metric: str) -> list[str]:
    """The trade-off table of the retrainings against forgetting; the gates judged the chosen one (above)."""
    rows = [[a["attempt"], a["changes"], a["steps"], a.get(metric, float("nan")),
             change_text(a["task_change"]) if a["task_change"] else "", a["forgetting"],
             change_text(a["forgetting_change"]), a["model_version"]] for a in attempts]  # fmt: skip
    header = ["attempt", "changes", "steps", metric, f"{metric} vs base (points)", "forgetting",
              "general change (points)", "model version"]  # fmt: skip
    return [
        "## Mitigating forgetting",
        "",
        "Forgetting was found, so the pipeline retrained with the reference texts' mitigations, each attempt adding "
        "one (forgetting.mitigation); the gates judged the best attempt whose forgetting verdict allows promotion.",
        "",
        markdown_table(header, rows),
        "",
    ]


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
    if evaluation.change:
        c = evaluation.change
        parts += [
            f"On the same {c['n']} test examples, fine-tuned - base on {evaluation.metric}: {change_text(c)} "
            f"({c['method']}" + (f", McNemar p = {c['p_value']:.2g})." if c["p_value"] == c["p_value"] else ")."),
            "",
        ]
    if evaluation.judge:
        judge = evaluation.judge
        change = judge.get("change")
        paired = (
            f" Paired on the same {change['n']} examples: {change['difference']:+.2f} [{change['low']:+.2f}, "
            f"{change['high']:+.2f}] (95%, {change['method']})."
            if change else ""
        )  # fmt: skip
        parts += [
            f"LLM judge (1-5): base {judge['base']['judge_score']:.2f}, "
            f"fine-tuned {judge['finetuned']['judge_score']:.2f}.{paired}",
            "",
        ]
        if "win_rate" in judge:
            w = judge["win_rate"]
            parts += [
                f"Win rate of the fine-tuned replies over the base model's: {w['win_rate']:.0%} ({w['wins']} wins, "
                f"{w['ties']} ties, {w['losses']} losses on {w['n']}; sign test p = {w['sign_test_p']:.2g}).",
                "",
            ]
    if evaluation.task_type == "preference":
        parts += _preference(evaluation)
    return parts + _next_data(evaluation)


def _next_data(evaluation: EvaluationResult) -> list[str]:
    """The first suggestions of next_data.md: what to collect before the next retraining."""
    if not evaluation.next_data:
        return []
    first = [f"{rank}. {sentence}" for rank, sentence in enumerate(evaluation.next_data[:3], 1)]
    return ["What to add next (the fine-tuned model's failures on the test split, ranked; all of them with the "
            "test examples it got wrong in next_data.md):", "", *first, ""]  # fmt: skip


def _preference(evaluation: EvaluationResult) -> list[str]:
    """DPO's implicit reward against the base, and sample pairs, worst first."""
    m = evaluation.finetuned
    parts = [
        f"Implicit reward (DPO's, against the base model asked as the trained one is): mean margin "
        f"{m['reward_margin']:+.3f} [{m['reward_margin_low']:+.3f}, {m['reward_margin_high']:+.3f}]; the chosen "
        f"reply gains more than the rejected one on {m['reward_accuracy']:.0%} [{m['reward_accuracy_low']:.0%}, "
        f"{m['reward_accuracy_high']:.0%}] of {int(m['n'])} pairs (95%). Preference accuracy compares each model's "
        "own log-likelihoods of the two replies, so it is comparable before and after; the reward is the change.",
        "",
    ]
    lines = Path(evaluation.predictions_path).read_text(encoding="utf-8").splitlines()
    rows = [r for r in map(json.loads, lines) if r.get("finetuned_reply") is not None]
    if rows:
        parts += ["Sample replies, worst first (lowest reward margin):", ""]
        for r in rows:
            parts += [
                f"- reward margin {r['reward_margin']:+.3f}, prefers {r['finetuned_prefers']} (base: "
                f"{r['base_prefers']}); prompt: {shorten(r['input'])}",
                f"  - fine-tuned: {shorten(r['finetuned_reply'])}",
                f"  - base: {shorten(r['base_reply'])}",
            ]
        parts.append("")
    return parts


def _forgetting(forgetting: ForgettingReport) -> list[str]:
    def row(name: str, r: dict[str, float], verdict: str) -> list:
        return [name, int(r["n"]), r["before"], r["after"], f"{100 * r['difference']:+.1f}",
                f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}] ({r['confidence']:.1%})", f"-{100 * r['margin']:.1f}",
                f"{100 * r['detectable_drop']:.1f}", f"{r['changed']:.1%}", r["p_value"], verdict]  # fmt: skip

    names = {OLD_TASK: "old task (the champion's test split)"}
    rows = [row(names.get(name, name), r, forgetting.verdicts[name]) for name, r in forgetting.per_benchmark.items()]
    rows.append(row("**all, pooled**", forgetting.pooled, forgetting.pooled_verdict))
    header = ["benchmark", "questions", "before", "after", "change (points)", "interval", "threshold (points)",
              "detectable drop (points)", "answers changed", "McNemar p", "verdict"]  # fmt: skip
    k = len(forgetting.per_benchmark)
    explain = (
        f"**Verdict: {forgetting.verdict}.** The change is after - before on the same questions, with Tango's "
        f"interval for paired proportions; the threshold is {forgetting.threshold:.0%} of each baseline. The verdict "
        "is decided on all questions pooled (95%); each benchmark is also tested, its interval widened for testing "
        f"{k} benchmarks (Bonferroni), and one that shows forgetting counts. `no forgetting`: the interval excludes a "
        "drop beyond the threshold; `forgetting`: the drop is beyond it and the interval excludes no change; "
        "`inconclusive`: neither. The detectable drop is the smallest these questions find with 80% power at the "
        "share of answers that changed."
    )
    parts = ["## Forgetting", "", markdown_table(header, rows), "", explain, ""]
    if forgetting.recommendations:
        parts += ["Try: " + "; ".join(forgetting.recommendations), ""]
    return parts + [f"- {note}" for note in forgetting.notes] + ([""] if forgetting.notes else [])
