"""The internal record every input format is normalized into, and the rejects that explain lost rows."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tunesmith.records import Example

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, whitespace-collapsed text: the form exact duplicates are compared in."""
    return _SPACE.sub(" ", text).strip().lower()


def make_example(
    messages: list[dict[str, str]],
    source: str,
    label: str | None = None,
    category: str | None = None,
    origin: str = "task",
    rejected: str | None = None,
    labels: list[str] | None = None,
) -> Example:
    """Build an Example whose id is a hash of its normalized content (stable across files and runs)."""
    content = [[m["role"], normalize_text(m["content"])] for m in messages] + [label]
    if rejected is not None:
        content.append(normalize_text(rejected))
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]
    return Example(digest, messages, source, label, category, origin, rejected, labels)


def copy_of(example: Example, n: int) -> Example:
    """An oversampled repeat: same content, its own id (`<id>~<n>`) so repeats stay countable."""
    return replace(example, id=f"{example.id}~{n}", source=f"{example.source} (oversampled copy {n})")


def content_id(example_id: str) -> str:
    """The content hash behind an id, also for oversampled copies."""
    return example_id.split("~", 1)[0]


@dataclass(frozen=True)
class Rejected:
    """An input row that was not kept: its kind (for counts), the reason a person can act on, and the row."""

    source: str
    kind: str
    reason: str
    field: str | None = None
    raw: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        return f"{self.source}: {self.reason}"


_PLACE = re.compile(r"^(.*) (line|item|row) (\d+)$")


def _places(sources: list[str], shown: int) -> str:
    """'data.jsonl lines 7, 9, 12, ... 40 more' when the rows share a file, else the sources as they are."""
    more = f", ... {len(sources) - shown} more" if len(sources) > shown else ""
    found = [_PLACE.match(s) for s in sources]
    if all(found) and len({(m[1], m[2]) for m in found}) == 1:
        return f"{found[0][1]} {found[0][2]}s {', '.join(m[3] for m in found[:shown])}{more}"
    return ", ".join(sources[:shown]) + more


def by_reason(rejected: list[Rejected], shown: int = 3) -> list[str]:
    """One line per distinct reason: 'data.jsonl line 7: reason', or 'N rows: reason (data.jsonl lines 7, 9, ...)'."""
    sources: dict[str, list[str]] = {}
    too_long = [row for row in rejected if row.kind == "too_long"]
    for row in rejected:
        reason = _too_long_range(too_long) if row.kind == "too_long" and len(too_long) > 1 else row.reason
        sources.setdefault(reason, []).append(row.source)
    return [
        f"{where[0]}: {reason}" if len(where) == 1 else f"{len(where)} rows: {reason} ({_places(where, shown)})"
        for reason, where in sources.items()
    ]


def _too_long_range(rows: list[Rejected]) -> str:
    """Over-long examples differ only in their length: one line with the range instead of one per length."""
    lengths = [int(m[1]) for m in (re.match(r"example is (\d+) tokens", r.reason) for r in rows) if m]
    limit = rows[0].reason.rsplit(" ", 1)[-1]
    return f"examples of {min(lengths)} to {max(lengths)} tokens, longer than training.max_seq_length {limit}"


@dataclass
class LoadResult:
    examples: list[Example] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    read: int = 0
    ignored_fields: dict[str, int] = field(default_factory=dict)  # field the format does not read -> rows with it


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_examples(path: Path) -> list[Example]:
    with Path(path).open(encoding="utf-8") as rows:
        return [Example.from_json(json.loads(line)) for line in rows if line.strip()]


def write_examples(examples: list[Example], path: Path) -> Path:
    return write_jsonl([e.to_json() for e in examples], path)
