"""What a cached result was computed by: Tunesmith's version and a hash of the library's source. Cache keys of
cached stages include it, so results computed by other code (an upgrade, a local change) are never reused."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tunesmith.resources import package_file


def tunesmith_version() -> str:
    try:
        return version("tunesmith")
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "0+unknown"


def source_hash(folder: Path) -> str:
    """Hash of every .py file below `folder`, with its relative path, in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> str:
    """The whole library, not one stage's package: stages share records, prompts, config and model loading, and
    a stale cache costs more than a recomputed one."""
    return f"{tunesmith_version()}+{source_hash(package_file('tunesmith'))}"
