"""The leakage check: no training example may be an exact or near copy of a validation or test example."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.curation.dedup import dedup_text
from tunesmith.curation.minhash import signatures
from tunesmith.curation.records import normalize_text
from tunesmith.records import Example


@dataclass
class LeakageResult:
    train: list[Example]
    removed: list[tuple[Example, Example, float]] = field(default_factory=list)  # (train, held-out match, similarity)


def remove_leaks(
    train: list[Example],
    held_out: list[Example],
    threshold: float = 0.8,
    num_perm: int = 128,
    unit: str = "char",
    n: int = 5,
    seed: int = 1,
) -> LeakageResult:
    """Drop training examples whose input matches a held-out example exactly or by MinHash similarity.

    Labels are ignored here on purpose: a near copy of a test input leaks it whatever its label.
    """
    from datasketch import MinHashLSH

    exact = {normalize_text(dedup_text(e)): e for e in held_out}
    held_sigs = signatures((dedup_text(e) for e in held_out), unit, n, num_perm, seed)
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, signature in enumerate(held_sigs):
        index.insert(i, signature)
    result = LeakageResult(train=[])
    train_sigs = signatures((dedup_text(e) for e in train), unit, n, num_perm, seed)
    for example, signature in zip(train, train_sigs, strict=True):
        match = exact.get(normalize_text(dedup_text(example)))
        if match is not None:
            result.removed.append((example, match, 1.0))
            continue
        similar = [(signature.jaccard(held_sigs[j]), j) for j in index.query(signature)]
        similar = [(s, j) for s, j in similar if s >= threshold]
        if similar:
            best, j = max(similar)
            result.removed.append((example, held_out[j], best))
        else:
            result.train.append(example)
    return result
