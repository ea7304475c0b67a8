"""Training methods behind one registry. A method is one module that defines METHOD (a TrainingMethod: how it
builds, saves, loads and merges, its settings section, its memory figures, what the trainer does differently)
and one line below. The config schema, the memory estimate, the comparison and serving read from here."""

from __future__ import annotations

from tunesmith.training.methods import adapter, dora, full, ia3, lora, prefix, prompt, qlora, spectrum
from tunesmith.training.methods.base import MethodDefaults, Settings, TrainingMethod

METHODS: dict[str, TrainingMethod] = {}


def register(method: TrainingMethod) -> TrainingMethod:
    """Add a method (or replace one of the same name); it is then valid in training.method everywhere."""
    METHODS[method.name] = method
    return method


def get_method(name: str) -> TrainingMethod:
    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r}: use one of {', '.join(METHODS)}")
    return METHODS[name]


def settings_models() -> dict[str, type[Settings]]:
    """training.<key> -> the settings model of the method that owns that section."""
    return {m.settings_key: m.settings for m in METHODS.values() if m.settings_key and m.settings}


def default_comparison() -> list[str]:
    return [name for name, m in METHODS.items() if m.compare_by_default]


for module in (full, lora, dora, qlora, adapter, prefix, prompt, ia3, spectrum):
    register(module.METHOD)

__all__ = ["METHODS", "MethodDefaults", "Settings", "TrainingMethod", "get_method", "register", "settings_models"]
