"""The base model's benchmark scores, computed once per (model content, benchmark files, lm-eval version, settings)
and reused by every later run and retrain: on a 7B model with a few thousand questions they are the slowest part
of the forgetting check, and they cannot change while none of those inputs does."""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tunesmith.versioning import source_hash

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MEMO = "file_hashes.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hash(path: Path, memo: dict[str, str]) -> str:
    """sha256 of a file's content. A Hugging Face cache blob is named by it already; other files are hashed once
    per (path, size, mtime) and remembered in `memo`, so a 15 GB checkpoint is read once, not every night."""
    real = Path(path).resolve()
    if real.parent.name == "blobs" and HEX64.match(real.name):
        return real.name
    stat = real.stat()
    key = f"{real}:{stat.st_size}:{stat.st_mtime_ns}"
    if key not in memo:
        memo[key] = _sha256(real)
    return memo[key]


def model_content_hash(model_path: str, cache_dir: Path) -> str:
    """A hash of every file of a local model folder (weights, config, tokenizer); a name that is not a local
    folder (a hub id pinned elsewhere) is hashed as its name."""
    folder = Path(model_path)
    if not folder.is_dir():
        return hashlib.sha256(model_path.encode()).hexdigest()
    memo_file = cache_dir / MEMO
    memo = json.loads(memo_file.read_text(encoding="utf-8")) if memo_file.is_file() else {}
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(file_hash(path, memo).encode())
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(memo_file, memo)
    return digest.hexdigest()


def scoring_code_version() -> str:
    from tunesmith.resources import package_file

    return "+".join(source_hash(package_file("tunesmith") / name) for name in ("forgetting", "models"))


def scores_key(model_hash: str, precision: dict[str, Any], suite: dict[str, Any], benchmark_paths: dict[str, str],
               limit: int | None, seed: int) -> str:  # fmt: skip
    """Everything the base model's scores depend on. Of Tunesmith's code, only what loads the model and asks the
    questions (the forgetting and models packages): the whole library's version would rescore the base model,
    10-15 minutes of a CPU's time, after any change anywhere, a new data format as much as a scorer fix."""
    memo: dict[str, str] = {}
    key = {
        "model": model_hash,
        "dtype": precision["dtype"],
        "device": precision["device"],
        "local": {name: file_hash(Path(path), memo) for name, path in sorted(benchmark_paths.items())},
        "harness": sorted(suite["harness"]),
        "backend": suite["backend"],  # vLLM's kernels and the HF backend's differ in the last digits
        "lm_eval": version("lm_eval"),
        "limit": limit,
        "seed": seed,
        "code": scoring_code_version(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cached_scores(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """{"scores", "run_id"} saved under `key`, if any."""
    path = cache_dir / f"{key}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def save_scores(cache_dir: Path, key: str, scores: dict[str, Any], run_id: str) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(cache_dir / f"{key}.json", {"scores": scores, "run_id": run_id})


def _write_atomically(path: Path, content: Any) -> None:
    """Two runs on a shared output folder may write at once; each reader sees a whole file."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(content), encoding="utf-8")
    tmp.replace(path)
