"""Spectrum: train only the weight matrices with the highest signal-to-noise ratio, freeze the rest.

Following Hartford et al. (2024), each matrix's singular values are split at the Marchenko-Pastur edge of
a random matrix with the same noise level: SNR = sum of singular values above the edge / sum below. Within
each kind of matrix (q_proj, k_proj, ..., down_proj) the top `training.spectrum.fraction` are trained.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from tunesmith.models.shape import ModelShape
from tunesmith.search.space import rate, span
from tunesmith.training.methods.base import (
    Settings,
    TrainingMethod,
    base_for_training,
    load_full,
    save_full,
)
from tunesmith.training.methods.full import METHOD as FULL


class SpectrumSettings(Settings):
    fraction: float = Field(0.25, gt=0.0, le=1.0)  # share of each kind of matrix that trains, by signal-to-noise


# What trains is a subset of the full model's own weights, so the rate is full fine-tuning's, by the model's width
# (Hartford et al. train Spectrum at their full fine-tuning rate). On the banking77 slice the old fixed 2e-5
# reached accuracy 0.469; full fine-tuning's 1.32e-4 at this width reached 0.852 (full fine-tuning: 0.898).
DEFAULTS = FULL.defaults


def snr(weight: torch.Tensor) -> float:
    """Signal-to-noise ratio of a matrix's singular values around the Marchenko-Pastur noise edge."""
    w = weight.detach().float()
    m, n = w.shape
    values = torch.linalg.svdvals(w)
    centred = w - w.median()
    sigma = (centred.abs().median() / 0.6745).item()  # robust (MAD) estimate of the entry noise
    edge = sigma * (math.sqrt(m) + math.sqrt(n))
    signal, noise = values[values > edge].sum().item(), values[values <= edge].sum().item()
    return signal / noise if noise > 0 else math.inf


def rank_modules(model) -> dict[str, list[tuple[str, float]]]:
    """Linear layers inside decoder blocks grouped by kind, each kind sorted by SNR, highest first."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            groups.setdefault(name.rsplit(".", 1)[-1], []).append((name, snr(module.weight)))
    return {kind: sorted(items, key=lambda item: -item[1]) for kind, items in groups.items()}


def select(model, fraction: float) -> list[str]:
    chosen = []
    for items in rank_modules(model).values():
        chosen += [name for name, _ in items[: max(1, round(fraction * len(items)))]]
    return chosen


def build(base: str, config, precision, trust_remote_code: bool = False):
    model = base_for_training(base, config, precision, trust_remote_code)
    chosen = set(select(model, config.spectrum.fraction))
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.rsplit(".", 1)[0] in chosen
    model.spectrum_selected = sorted(chosen)
    return model


def trainable_params(shape: ModelShape, training) -> int:
    return round(training.spectrum.fraction * shape.layer_linear_params)


METHOD = TrainingMethod(
    name="spectrum",
    defaults=DEFAULTS,
    search_space={"learning_rate": rate(5e-6, 5e-4), "epochs": span(1, 4), "spectrum.fraction": span(0.1, 0.5)},
    build=build,
    save=save_full,
    load=load_full,
    trainable_params=trainable_params,
    settings_key="spectrum",
    settings=SpectrumSettings,
    adds_weights=False,
    describe=lambda training: f"the top {training.spectrum.fraction:.0%} of each kind of matrix by signal-to-noise",
    compare_by_default=False,
)
