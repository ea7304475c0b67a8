"""Load a run config from YAML, apply `--set key=value` overrides, validate, and explain failures."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunesmith.config.schema import RunConfig
from tunesmith.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A configuration problem, worded for the person who wrote the file."""

    titled = True  # "config error in <file>: ..."


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Return the validated RunConfig for a YAML file plus `key.path=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config error in {path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"config error in {path}: the top level must be a mapping of keys to values")
    for override in overrides or []:
        apply_override(raw, override, source=path)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        problems = [describe_error(e) for e in err.errors()]
        raise ConfigError(f"config error in {path}:\n  " + "\n  ".join(problems)) from None


def apply_override(raw: dict[str, Any], override: str, source: Path | str = "<command line>") -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (so 1 is an int, true a bool)."""
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{override}' for {source} must look like key.path=value")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{override}': {part} is a value, not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""


def describe_error(error: dict[str, Any]) -> str:
    """One line naming the key, the offending value and what is wrong with it."""
    loc = error["loc"]
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _suggest(loc)
        return f"{key} is not a known key" + (f" (did you mean {hint}?)" if hint else "")
    if kind == "missing":
        return f"{key} is required"
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), dict) and kind == "value_error":
        return f"{key}: {message}"
    return f"{key}: {error.get('input')!r} is not valid: {message}"


def _suggest(loc: tuple[Any, ...]) -> str | None:
    model: type[BaseModel] | None = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field else _sections(model).get(part)
    if model is None:
        return None
    close = difflib.get_close_matches(str(loc[-1]), [*model.model_fields, *_sections(model)], n=1)
    if not close:
        return None
    return ".".join([str(p) for p in loc[:-1]] + close)


def _sections(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Sections a model validates beyond its declared fields (training's per-method sections)."""
    return model.section_models() if hasattr(model, "section_models") else {}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None


def save_resolved(config: RunConfig, path: Path) -> Path:
    """Write the fully resolved config (defaults included) as YAML beside a run's outputs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path
