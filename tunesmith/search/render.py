"""The search as markdown: for the decision record and the run summary."""

from __future__ import annotations

from typing import Any

from tunesmith.report.markdown import markdown_table
from tunesmith.search.space import show_value


def render_search(search: dict[str, Any], h2: str = "##") -> list[str]:
    trials = search["trials"]
    keys = list(search["space"])
    lines = [
        f"{h2} Hyperparameter search ({search['method']}, objective: {search['objective']})",
        "",
        "Searched: " + "; ".join(f"`{k}` {r}" for k, r in search["space"].items()) + ".",
        "",
        f"Chosen: {search['explanation']}.",
        "",
    ]
    best = (search.get("best") or {}).get("number")
    rows = []
    for t in trials:
        m = t["metrics"]
        score = m.get(f"validation_{search['metric']}")
        change = m.get("forgetting_change_pct")
        mark = " (chosen)" if t["number"] == best else ""
        rows.append([f"{t['number']}{mark}", t["state"], *(show_value(t["settings"].get(k)) for k in keys),
                     show_value(score), show_value(change), t["reason"][:120]])  # fmt: skip
    header = ["trial", "state", *keys, f"validation {search['metric']}", "forgetting %", "note"]
    return [*lines, markdown_table(header, rows), ""]
