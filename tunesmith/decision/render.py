"""The decision record, readable: what was measured, what each method needs, which rules fired."""

from __future__ import annotations

from tunesmith.records import DecisionRecord
from tunesmith.report.markdown import markdown_table
from tunesmith.search.render import render_search
from tunesmith.training.plan import TrainingPlan


def render_plan(plan: dict, h2: str = "##") -> list[str]:
    """The training plan as a table: each setting, its value and where the value came from."""
    memory = plan["memory"]
    checked = (
        f"estimated {memory['total_gb']:.2f} GB of {memory['budget_gb']:.2f} GB usable ({memory['budget_source']})"
        if memory.get("checked")
        else "memory not checked"
    )
    rows = TrainingPlan.from_json(plan).rows()
    return [f"{h2} Training plan ({checked})", "", markdown_table(["setting", "value", "from"], rows), ""]


def _interval(baseline: dict) -> str:
    low, high = baseline.get("low", float("nan")), baseline.get("high", float("nan"))
    return f"[{low:.3f}, {high:.3f}]" if low == low else ""


def render_decision(record: DecisionRecord, level: int = 1) -> str:
    h1, h2 = "#" * level, "#" * (level + 1)
    head = f"**{record.decision}**" + (f" with **{record.method}**" if record.method else "")
    lines = [f"{h1} Decision", "", head, ""]
    if record.overridden:
        chosen = record.would_have_chosen or {}
        would = chosen.get("decision") + (f" with {chosen['method']}" if chosen.get("method") else "")
        lines += [f"Overridden by the config: the stage would have chosen {would}.", ""]
    if record.baselines:
        header = ["baseline", "metric", "score", "95% interval", "prompt tokens / request", "latency / example (s)",
                  "n"]  # fmt: skip
        rows = [[b["name"], b["metric"], f"{b['score']:.3f}", _interval(b), f"{b['prompt_tokens']:.0f}",
                 f"{b['latency_s']:.3f}", b["n"]] for b in record.baselines]  # fmt: skip
        lines += [f"{h2} Baselines (base model, validation split)", "", markdown_table(header, rows), ""]
        if record.prompts_compared:
            lines += [f"Paired on the same examples, {record.prompts_compared}.", ""]
    lines += [f"{h2} Rules", ""]
    lines += [f"- [{'x' if r.fired else ' '}] {r.name}: {r.evidence}" for r in record.rules]
    lines.append("")
    if record.memory:
        header = ["method", "trainable params", "weights GB", "gradients GB", "optimizer GB", "activations GB",
                  "overhead GB", "total GB"]  # fmt: skip
        rows = [[name, f"{e['trainable_params']:,}", f"{e['weights_gb']:.3f}", f"{e['gradients_gb']:.3f}",
                 f"{e['optimizer_gb']:.3f}", f"{e['activations_gb']:.3f}", f"{e['overhead_gb']:.2f}",
                 f"{e['total_gb']:.3f}"] for name, e in record.memory.items()]  # fmt: skip
        lines += [
            f"{h2} Training memory by method (available: {record.memory_available_gb:.1f} GB, {record.memory_source})",
            "",
            markdown_table(header, rows),
        ]
        first = next(iter(record.memory.values()))
        lines += ["", "Assumptions: " + "; ".join(first["assumptions"]), ""]
    if record.training_plan:
        lines += render_plan(record.training_plan, h2)
    if record.search:
        lines += render_search(record.search, h2)
    if record.stop and record.winning_template:
        lines += [
            f"{h2} Result: the prompt to use",
            "",
            f"From baseline `{record.winning_baseline}`; saved as prompt_template.json.",
            "",
        ]
    return "\n".join(lines)
