"""Duplicate removal: exact matches on normalized text, keeping the first occurrence."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.curation.records import Example, normalize_text


@dataclass
class DedupResult:
    kept: list[Example]
    removed: list[tuple[Example, Example]] = field(default_factory=list)  # (duplicate, kept original)
    conflicts: list[list[Example]] = field(default_factory=list)  # same input, different labels


def _conversation_key(example: Example) -> str:
    return "\x1f".join(f"{m['role']}:{normalize_text(m['content'])}" for m in example.messages)


def exact_dedup(examples: list[Example]) -> DedupResult:
    """Drop examples whose normalized conversation equals an earlier one's.

    Same input with different labels is not a duplicate: both are kept and reported as label noise,
    because picking one would silently decide which annotator was right.
    """
    seen: dict[str, Example] = {}
    result = DedupResult(kept=[])
    by_input: dict[str, list[Example]] = {}
    for example in examples:
        key = _conversation_key(example)
        if key in seen:
            result.removed.append((example, seen[key]))
            continue
        seen[key] = example
        result.kept.append(example)
        if example.label is not None:
            by_input.setdefault(normalize_text(example.prompt_text), []).append(example)
    result.conflicts = [group for group in by_input.values() if len({e.label for e in group}) > 1]
    return result
