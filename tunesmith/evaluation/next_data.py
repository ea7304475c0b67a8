"""What data to add next: the fine-tuned model's failures on the test split, ranked into a list of what to collect.

For classification, each label's errors and recall on the test split (Wilson interval), the labels it is confused
with, how many training examples it had, and whether its recall is below the other labels' by more than chance
(Fisher's exact test against every other test example, Holm-corrected over the labels). For generation, the
examples' scores grouped by the data's category, or by clusters of their prompts (TF-IDF, k-means) when the data
has none, each group against the rest (Mann-Whitney U, Holm-corrected).

Groups are ranked: significantly below the rest first, then by how much they cost (errors, or score lost), then
by fewer training examples. The suggested count follows the loop the reference texts describe (inspect failures,
add about 20 examples targeting them, retrain): 20, or as many as bring a group up to the median group's training
examples when it has fewer.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.evaluation.metrics import mean_interval, score_interval
from tunesmith.records import Example
from tunesmith.report.markdown import shorten

STEP = 20  # examples per round of targeted collection, after the reference texts' loop
SHOWN = 5  # wrong test examples shown per suggestion
ALPHA = 0.05


@dataclass
class Suggestion:
    group: str
    kind: str  # label | category | cluster
    add: int  # examples to collect, about
    test_examples: int
    errors: int  # classification: wrong answers; generation: examples below the median score
    score: float  # recall, or the group's mean score
    interval: tuple[float, float]
    rest_score: float  # the same over every other test example
    p_value: float  # below the rest (one-sided), Holm-corrected over the groups
    train_examples: int
    confused_with: list[tuple[str, int]] = field(default_factory=list)
    wrong: list[dict[str, Any]] = field(default_factory=list)

    @property
    def below_rest(self) -> bool:
        return self.p_value < ALPHA

    def sentence(self) -> str:
        what = f"add about {self.add} examples of {self.group}"
        if self.confused_with:
            what += "; it is confused with " + ", ".join(f"{label} ({n})" for label, n in self.confused_with[:3])
        return what


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the family-wise error stays at alpha over all the groups tested. (SciPy has
    only Benjamini-Hochberg; statsmodels, which has Holm, is not a dependency for eight lines.)"""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _to_add(train_examples: int, median: float) -> int:
    return max(STEP, math.ceil(median - train_examples))


def _ranked(suggestions: list[Suggestion], cost) -> list[Suggestion]:
    return sorted(suggestions, key=lambda s: (not s.below_rest, -cost(s), s.train_examples, s.group))


def classification_suggestions(
    tests: list[Example], predictions: list[str], train_counts: dict[str, int]
) -> list[Suggestion]:
    """One suggestion per label the fine-tuned model got wrong at least once, ranked."""
    from scipy.stats import fisher_exact

    pairs = [(e.label, p) for e, p in zip(tests, predictions, strict=True) if e.label is not None]
    median = statistics.median(train_counts.values()) if train_counts else 0
    found, p_values = [], {}
    for label in sorted({truth for truth, _ in pairs}):
        mine = [p == label for truth, p in pairs if truth == label]
        rest = [p == truth for truth, p in pairs if truth != label]
        errors = mine.count(False)
        table = [[sum(mine), errors], [sum(rest), len(rest) - sum(rest)]]
        p_values[label] = float(fisher_exact(table, alternative="less").pvalue) if rest else 1.0
        if not errors:
            continue  # tested all the same: the family the correction covers is every label
        confused = Counter(p for truth, p in pairs if truth == label and p != label).most_common()
        wrong = [
            {"id": e.id, "input": e.prompt_text, "label": label, "predicted": p}
            for e, p in zip(tests, predictions, strict=True)
            if e.label == label and p != label
        ][:SHOWN]
        recall = sum(mine) / len(mine)
        interval = score_interval("classification", [float(right) for right in mine])  # Wilson's
        found.append(Suggestion(
            label, "label", _to_add(train_counts.get(label, 0), median), len(mine), errors, recall,
            interval, sum(rest) / len(rest) if rest else math.nan, 1.0,
            train_counts.get(label, 0), confused, wrong,
        ))  # fmt: skip
    adjusted = dict(zip(p_values, _holm(list(p_values.values())), strict=True))
    for suggestion in found:
        suggestion.p_value = adjusted[suggestion.group]
    return _ranked(found, lambda s: s.errors)


def generation_suggestions(
    tests: list[Example], scores: list[float], predictions: list[str], train_counts: dict[str, int],
    clusters: int = 8, seed: int = 0,
) -> list[Suggestion]:  # fmt: skip
    """Groups of test examples by the data's category (or prompt clusters when it has none), ranked by the
    score they lose; a group's errors are its examples below the median score."""
    from scipy.stats import mannwhitneyu

    groups, kind = _groups(tests, clusters, seed)
    cutoff = statistics.median(scores) if scores else 0.0
    median = statistics.median(train_counts.values()) if train_counts else 0
    found, p_values = [], {}
    for name in sorted(set(groups)):
        mine = [s for s, g in zip(scores, groups, strict=True) if g == name]
        rest = [s for s, g in zip(scores, groups, strict=True) if g != name]
        below = [i for i, g in enumerate(groups) if g == name and scores[i] < cutoff]
        p_values[name] = float(mannwhitneyu(mine, rest, alternative="less").pvalue) if rest else 1.0
        if not below:
            continue
        worst = sorted(below, key=lambda i: scores[i])[:SHOWN]
        wrong = [{"id": tests[i].id, "input": tests[i].prompt_text, "reference": tests[i].answer,
                  "output": predictions[i], "score": round(scores[i], 4)} for i in worst]  # fmt: skip
        found.append(Suggestion(
            name, kind, _to_add(train_counts.get(name, 0), median), len(mine), len(below), statistics.fmean(mine),
            mean_interval(mine), statistics.fmean(rest) if rest else math.nan, 1.0,
            train_counts.get(name, 0), [], wrong,
        ))  # fmt: skip
    adjusted = dict(zip(p_values, _holm(list(p_values.values())), strict=True))
    for suggestion in found:
        suggestion.p_value = adjusted[suggestion.group]
    return _ranked(found, lambda s: 0.0 if math.isnan(s.rest_score) else s.test_examples * (s.rest_score - s.score))


def _groups(tests: list[Example], clusters: int, seed: int) -> tuple[list[str], str]:
    """The examples' categories, or k-means clusters of their prompts' TF-IDF vectors named by their top terms."""
    if all(e.category for e in tests):
        return [str(e.category) for e in tests], "category"
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [e.prompt_text for e in tests]
    k = max(1, min(clusters, len(texts) // 10))
    vectorizer = TfidfVectorizer(stop_words="english", max_features=5000)
    vectors = vectorizer.fit_transform(texts)
    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
    terms = vectorizer.get_feature_names_out()
    names = ["cluster " + "/".join(terms[j] for j in center.argsort()[::-1][:3]) for center in model.cluster_centers_]
    return [names[c] for c in model.labels_], "cluster"


def write_next_data(suggestions: list[Suggestion], out_dir: Path, task: str) -> tuple[Path, Path]:
    """next_data.md (the ranked list, with wrong test examples) and next_data.jsonl (those test rows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# What data to add next ({task})", ""]
    if not suggestions:
        lines.append("The fine-tuned model made no errors on the test split: no group to target.")
    for rank, s in enumerate(suggestions, 1):
        lo, hi = s.interval
        what = "recall" if s.kind == "label" else "mean score"
        verdict = (f"below the rest ({s.rest_score:.2f}), p = {s.p_value:.2g} (Holm)" if s.below_rest
                   else f"not told apart from the rest ({s.rest_score:.2f}), p = {s.p_value:.2g} (Holm)")  # fmt: skip
        lines += [
            f"## {rank}. {s.sentence()}",
            "",
            f"{s.errors} of {s.test_examples} test examples wrong; {what} {s.score:.2f} [{lo:.2f}, {hi:.2f}] "
            f"(95%), {verdict}; {s.train_examples} training examples.",
            "",
            *[
                f"- `{shorten(w['input'], 100)}` -> {w.get('predicted', shorten(w.get('output', ''), 100))}"
                for w in s.wrong
            ],
            "",
        ]
    md = out_dir / "next_data.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    rows = [{"rank": rank, "group": s.group, **w} for rank, s in enumerate(suggestions, 1) for w in s.wrong]
    jsonl = out_dir / "next_data.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return md, jsonl


def summary_rows(suggestions: list[Suggestion]) -> list[dict[str, Any]]:
    return [asdict(s) | {"below_rest": s.below_rest} for s in suggestions]
