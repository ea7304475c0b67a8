"""Files installed with Tunesmith (expectation suites, bundled data, example configs), found through
importlib.resources so that they resolve the same in a checkout, an editable install and a wheel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_file(package: str, name: str = "") -> Path:
    """A real path: wheels install unzipped, and GX, lm-eval and pydantic's file checks need paths, not streams."""
    resource = files(package) / name if name else files(package)
    return Path(str(resource))


def expectations_dir() -> Path:
    return package_file("tunesmith.expectations")


def bundled_data(name: str = "") -> Path:
    return package_file("tunesmith.data", name)


def example_config(name: str = "quickstart.yaml") -> Path:
    return package_file("tunesmith.configs", name)
