"""Duplicate removal, in three configurable steps: exact, near (MinHash LSH) and semantic (embeddings).

Each step keeps one representative per cluster (the first in input order) and reports what it removed.
Duplicates are only merged within one label: the same text under two labels is label noise, which is
reported for a person to resolve rather than silently decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tunesmith.curation.minhash import signatures
from tunesmith.curation.records import normalize_text
from tunesmith.records import Example


@dataclass
class Cluster:
    kept: Example
    removed: list[Example]
    similarity: list[float]  # of each removed example to the kept one


@dataclass
class DedupResult:
    kind: str
    kept: list[Example]
    clusters: list[Cluster] = field(default_factory=list)
    conflicts: list[list[Example]] = field(default_factory=list)  # same or near-same input, different labels

    @property
    def removed(self) -> list[tuple[Example, Example, float]]:
        return [(r, c.kept, s) for c in self.clusters for r, s in zip(c.removed, c.similarity, strict=True)]


def dedup_text(example: Example) -> str:
    """What duplicates are compared on: the input for labelled data and preference pairs (two pairs on one prompt
    are one prompt twice: they would land in two splits), the whole conversation otherwise."""
    if example.target is not None or example.rejected is not None:
        return example.prompt_text
    return "\n".join(m["content"] for m in example.messages)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)  # the earliest example represents the cluster


def _collect(kind: str, examples: list[Example], pairs: list[tuple[int, int, float]]) -> DedupResult:
    """Cluster same-group pairs with union-find; report cross-label pairs as conflicts."""
    uf = _UnionFind(len(examples))
    best: dict[int, float] = {}
    conflicts = []
    for i, j, sim in pairs:
        if examples[i].target != examples[j].target:
            conflicts.append([examples[min(i, j)], examples[max(i, j)]])
            continue
        uf.union(i, j)
        later = max(i, j)
        best[later] = max(best.get(later, 0.0), sim)
    members: dict[int, list[int]] = {}
    for i in range(len(examples)):
        members.setdefault(uf.find(i), []).append(i)
    result = DedupResult(kind, kept=[examples[root] for root in sorted(members)], conflicts=conflicts)
    for root in sorted(members):
        others = [i for i in members[root] if i != root]
        if others:
            result.clusters.append(
                Cluster(examples[root], [examples[i] for i in others], [round(best.get(i, 1.0), 4) for i in others])
            )
    return result


def exact_dedup(examples: list[Example]) -> DedupResult:
    """Same text after lower-casing and collapsing whitespace (and, for labelled data, the same label)."""
    first: dict[tuple[str | None, str], int] = {}
    first_any_label: dict[str, int] = {}
    pairs = []
    for i, example in enumerate(examples):
        text = normalize_text(dedup_text(example))
        key = (example.target, text)
        if key in first:
            pairs.append((first[key], i, 1.0))
            continue
        first[key] = i
        if text in first_any_label:
            pairs.append((first_any_label[text], i, 1.0))  # same text, another label: a conflict
        else:
            first_any_label[text] = i
    return _collect("exact", examples, pairs)


def near_dedup(
    examples: list[Example],
    threshold: float = 0.8,
    num_perm: int = 128,
    unit: str = "char",
    n: int = 5,
    seed: int = 1,
) -> DedupResult:
    """Near-duplicates by MinHash LSH: candidate pairs from the LSH index, kept when the estimated
    Jaccard similarity of their shingle sets is at least `threshold`."""
    from datasketch import MinHashLSH

    sigs = signatures((dedup_text(e) for e in examples), unit, n, num_perm, seed)
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    pairs = []
    for i, signature in enumerate(sigs):
        for j in index.query(signature):
            similarity = signature.jaccard(sigs[j])
            if similarity >= threshold:
                pairs.append((j, i, similarity))
        index.insert(i, signature)
    return _collect("near", examples, pairs)


def semantic_dedup(
    examples: list[Example],
    threshold: float = 0.95,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    block: int = 2048,
) -> DedupResult:
    """Near-duplicates in meaning: cosine similarity of sentence embeddings at least `threshold`."""
    if embed is None:
        from tunesmith.models.embeddings import embed
    vectors = embed([dedup_text(e) for e in examples])
    pairs = []
    for start in range(0, len(examples), block):
        sims = vectors[start : start + block] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if c < i:  # each unordered pair once, earlier example first
                pairs.append((c, i, float(sims[r, c])))
    return _collect("semantic", examples, pairs)


def sample_clusters(result: DedupResult, limit: int = 20) -> list[dict]:
    """The largest clusters, as plain rows a person can read to judge the threshold."""
    largest = sorted(result.clusters, key=lambda c: -len(c.removed))[:limit]
    return [
        {
            "kind": result.kind,
            "kept": {"source": c.kept.source, "text": dedup_text(c.kept)[:300]},
            "removed": [
                {"source": e.source, "text": dedup_text(e)[:300], "similarity": s}
                for e, s in zip(c.removed, c.similarity, strict=True)
            ],
        }
        for c in largest
    ]
