"""Paired comparisons of two models on the same items: the difference with its interval, McNemar's test, and the
smallest difference a number of items can detect. The gates (forgetting, promotion) decide from these.

Right/wrong outcomes get Tango's score interval for a difference of paired proportions (Tango 1998): it keeps its
coverage with few or no changed answers, where a bootstrap of 0/1 differences (or Newcombe's hybrid interval)
collapses to a point and would call an unchanged model "certainly unchanged". No well-kept Python library computes
it (statsmodels has intervals for independent proportions only), so it is written here from the paper. Scores on a
scale (ROUGE-L, a judge's grade) get SciPy's paired BCa bootstrap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

BINARY = "Tango score interval for paired proportions"
BOOTSTRAP = "paired BCa bootstrap"


@dataclass(frozen=True)
class PairedDifference:
    """after - before on the same n items, with its two-sided interval at `confidence`."""

    n: int
    before: float
    after: float
    difference: float
    low: float
    high: float
    confidence: float
    method: str
    p_value: float  # two-sided: exact McNemar for right/wrong outcomes, NaN for scaled scores
    changed: float | None = None  # share of items whose right/wrong outcome changed (right/wrong outcomes only)

    @property
    def direction(self) -> int:
        """+1 / -1 when after is above / below before beyond noise, else 0 (direction_of)."""
        return direction_of(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def direction_of(change: dict[str, Any]) -> int:
    """+1 / -1 when a PairedDifference (as JSON) is above / below zero beyond noise, else 0: its interval excludes
    no change and, for right/wrong outcomes, so does McNemar's exact test. Tango's interval is a score interval,
    asymptotic: with 4 changed answers, all one way, it excludes zero where the exact test gives p = 0.125, and a
    verdict printed beside that p must not claim what it denies."""
    p = change["p_value"]
    exact_agrees = p != p or p < 1 - change["confidence"]  # NaN: scaled scores, the bootstrap interval alone
    if change["low"] > 0 and exact_agrees:
        return 1
    if change["high"] < 0 and exact_agrees:
        return -1
    return 0


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def _tango_z(gained: int, lost: int, n: int, delta: float) -> float:
    """Tango's score statistic for H0: after - before = delta, with the nuisance share of lost answers at its
    restricted maximum likelihood estimate."""
    w = -gained - lost + (2 * n - gained + lost) * delta
    lost_share = (math.sqrt(max(w * w + 8 * n * lost * delta * (1 - delta), 0.0)) - w) / (4 * n)
    variance = n * (2 * lost_share + delta * (1 - delta))
    if variance <= 0:
        return 0.0 if gained - lost - n * delta == 0 else math.copysign(math.inf, gained - lost - n * delta)
    return (gained - lost - n * delta) / math.sqrt(variance)


def _changes(before: Sequence[bool], after: Sequence[bool]) -> tuple[int, int]:
    """Items lost (right before, wrong after) and gained."""
    lost = sum(1 for b, a in zip(before, after, strict=True) if b and not a)
    gained = sum(1 for b, a in zip(before, after, strict=True) if a and not b)
    return lost, gained


def _mcnemar(lost: int, gained: int) -> float:
    from scipy.stats import binomtest

    return float(binomtest(min(lost, gained), lost + gained, 0.5).pvalue) if lost + gained else 1.0


def mcnemar_p(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Exact two-sided McNemar test on the same items: did the share answered correctly change?"""
    return _mcnemar(*_changes(before, after))


def paired_proportions(before: Sequence[bool], after: Sequence[bool], confidence: float = 0.95) -> PairedDifference:
    """Right/wrong on the same items before and after: the change in the share right, Tango's interval, and
    McNemar's exact p."""
    from scipy.optimize import brentq

    n = len(before)
    if n == 0 or len(after) != n:
        raise ValueError(f"paired outcomes need the same items on both sides ({len(before)} and {len(after)})")
    lost, gained = _changes(before, after)
    right_before = sum(map(bool, before))
    p_before, p_after = right_before / n, (right_before - lost + gained) / n
    difference, z = p_after - p_before, _z(confidence)
    # The interval is where |Z| < z: Z falls from +inf at -1 through 0 at the estimate to -inf at +1.
    low = -1.0 if _tango_z(gained, lost, n, -1 + 1e-12) <= z else brentq(
        lambda d: _tango_z(gained, lost, n, d) - z, -1 + 1e-12, difference)  # fmt: skip
    high = 1.0 if _tango_z(gained, lost, n, 1 - 1e-12) >= -z else brentq(
        lambda d: _tango_z(gained, lost, n, d) + z, difference, 1 - 1e-12)  # fmt: skip
    return PairedDifference(n, p_before, p_after, difference, low, high, confidence, BINARY,
                            _mcnemar(lost, gained), (lost + gained) / n)  # fmt: skip


def paired_scores(
    before: Sequence[float], after: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Scores on a scale for the same items: the change in the mean, SciPy's paired BCa bootstrap interval."""
    import numpy as np
    from scipy.stats import bootstrap

    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if b.size == 0 or a.shape != b.shape:
        raise ValueError(f"paired scores need the same items on both sides ({b.size} and {a.size})")
    difference = float(a.mean() - b.mean())
    if np.ptp(a - b) < 1e-9:  # every item moved by the same amount: the bootstrap has nothing to resample
        low = high = difference
    else:
        result = bootstrap((a - b,), np.mean, confidence_level=confidence, method="BCa", n_resamples=4000,
                           random_state=np.random.default_rng(seed))  # fmt: skip
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return PairedDifference(int(b.size), float(b.mean()), float(a.mean()), difference, low, high, confidence,
                            BOOTSTRAP, float("nan"))  # fmt: skip


def smallest_detectable_difference(n: int, changed: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest change in the share right that n paired items detect with `power` (two-sided test at
    1 - confidence), when a share `changed` of the items change answer: Connor's (1987) sample size for McNemar's
    test, n = (z_a sqrt(f) + z_b sqrt(f - d^2))^2 / d^2, solved for d."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    if n <= 0:
        return 1.0
    f = min(max(changed, 1.0 / n), 1.0)  # at least one changed answer: none observed is not none to come
    z_a, z_b = _z(confidence), float(norm.ppf(power))

    def excess(d: float) -> float:
        return (z_a * math.sqrt(f) + z_b * math.sqrt(max(f - d * d, 0.0))) ** 2 / (d * d) - n

    top = math.sqrt(f)
    if excess(top) > 0:  # too few items to detect even the largest change this flip rate allows
        return top
    return float(brentq(excess, 1e-9, top))
