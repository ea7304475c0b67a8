"""A knowledge corpus for the RAG baseline: passages, BM25 (rank-bm25) and embedding retrieval."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Passage:
    source: str
    text: str


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _chunks(text: str, words: int) -> list[str]:
    """Paragraphs, with long ones cut into pieces of at most `words` words."""
    pieces = []
    for paragraph in re.split(r"\n\s*\n", text):
        tokens = paragraph.split()
        pieces += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    return [p for p in pieces if p.strip()]


def load_corpus(path: Path, chunk_words: int = 120) -> list[Passage]:
    """Passages from a folder of .txt/.md files, or a JSONL file of {"text"} rows (optionally "title")."""
    path = Path(path)
    documents: list[tuple[str, str, str]] = []  # (source, title, text)
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", ".md")):
            documents.append((str(file), file.stem, file.read_text(encoding="utf-8")))
    else:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                row = json.loads(line)
                documents.append((f"{path} line {number}", row.get("title") or "", row["text"]))
    # Every chunk carries its document's title, so a passage cut from the middle still says what it is about.
    passages = [
        Passage(source, f"{title}: {chunk}" if title else chunk)
        for source, title, text in documents
        for chunk in _chunks(text, chunk_words)
    ]
    if not passages:
        raise ValueError(f"knowledge corpus {path} holds no text")
    return passages


class BM25Retriever:
    name = "bm25"

    def __init__(self, passages: list[Passage]):
        from rank_bm25 import BM25Okapi

        self.passages = passages
        self.index = BM25Okapi([_tokens(p.text) for p in passages])

    def top(self, query: str, k: int) -> list[Passage]:
        scores = self.index.get_scores(_tokens(query))
        return [self.passages[i] for i in np.argsort(-scores)[:k]]


class EmbeddingRetriever:
    name = "embedding"

    def __init__(self, passages: list[Passage], encoder: str = "all-minilm-l6-v2"):
        from tunesmith.models.embeddings import embed

        self.passages = passages
        self.encoder = encoder
        self.vectors = embed([p.text for p in passages], encoder)

    def top(self, query: str, k: int) -> list[Passage]:
        from tunesmith.models.embeddings import embed

        scores = self.vectors @ embed([query], self.encoder)[0]
        return [self.passages[i] for i in np.argsort(-scores)[:k]]
