"""Search dimensions: what a method declares worth searching, what a config overrides, and how a trial's
sampled values become a training config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Dimension(BaseModel):
    """One searched setting: a numeric range (log-scaled for rates) or a list of choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self) -> Dimension:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scaled range needs low > 0")
        return self

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(_show(c) for c in self.choices)
        return f"{self.low:g} to {self.high:g}" + (" (log)" if self.log else "")


def rate(low: float, high: float) -> Dimension:
    return Dimension(low=low, high=high, log=True)


def span(low: float, high: float) -> Dimension:
    return Dimension(low=low, high=high)


def choice(*options: Any) -> Dimension:
    return Dimension(choices=list(options))


def search_space(declared: dict[str, Dimension], overrides: dict[str, Dimension]) -> dict[str, Dimension]:
    """The method's declared ranges with the config's replacing or adding to them (keys as under training.)."""
    return {**declared, **overrides}


def suggest(trial, space: dict[str, Dimension]) -> dict[str, Any]:
    """One value per dimension from an Optuna trial; choices that are lists (target modules) are offered to
    Optuna by index, since its storage takes numbers, strings and None only."""
    values = {}
    for key, dim in space.items():
        if dim.choices is not None:
            if _scalar_choices(dim):
                values[key] = trial.suggest_categorical(key, dim.choices)
            else:
                index = trial.suggest_categorical(key, [_show(c) for c in dim.choices])
                values[key] = dim.choices[[_show(c) for c in dim.choices].index(index)]
        elif dim.integer:
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
    return values


def as_optuna(params: dict[str, Any], space: dict[str, Dimension]) -> dict[str, Any]:
    """Settings (as a config states them) in the form `suggest` stores them, for enqueuing a trial; values the
    space does not hold are left for the sampler (Optuna refuses a choice it was not offered)."""
    stored = {}
    for key, value in params.items():
        dim = space.get(key)
        if dim is None or value is None:
            continue
        if dim.choices is not None:
            shown = [_show(c) for c in dim.choices]
            if _show(value) in shown:
                stored[key] = dim.choices[shown.index(_show(value))] if _scalar_choices(dim) else _show(value)
        else:  # a number outside the range is still tried: Optuna warns and takes it as given
            stored[key] = value
    return stored


def _scalar_choices(dim: Dimension) -> bool:
    return all(isinstance(c, (int, float, str, bool)) or c is None for c in dim.choices or [])


def from_optuna(params: dict[str, Any], space: dict[str, Dimension]) -> dict[str, Any]:
    """A trial's stored params back as config values (the inverse of as_optuna)."""
    values = {}
    for key, value in params.items():
        dim = space.get(key)
        shown = [_show(c) for c in dim.choices] if dim and dim.choices else []
        values[key] = dim.choices[shown.index(value)] if value in shown and not isinstance(value, (int, float)) \
            else value  # fmt: skip
    return values


def with_settings(training: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """training (as JSON) with each `a.b` key of `settings` set: learning_rate, lora.r, lora.target_modules ..."""
    updated = {k: (dict(v) if isinstance(v, dict) else v) for k, v in training.items()}
    for key, value in settings.items():
        *sections, name = key.split(".")
        node = updated
        for section in sections:
            node[section] = dict(node.get(section) or {})
            node = node[section]
        node[name] = value
    return updated


def current_values(training: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The values a training config (as JSON, defaults resolved) holds for the searched keys."""
    values = {}
    for key in keys:
        node: Any = training
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values[key] = node
    return values


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def show_value(value: Any) -> str:
    """A setting as people read it: floats to 3-4 significant digits, lists joined, None as '-'."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else _show(value)
