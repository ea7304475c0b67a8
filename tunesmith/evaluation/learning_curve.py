"""How the test score grows with training examples: a saturating power law fitted to nested subsets, with
bootstrap intervals for what it predicts.

score(n) = a - b * n^(-c), the form learning curves of neural models follow over the range where more data still
helps (Hestness et al. 2017, "Deep learning scaling is predictable, empirically"; Rosenfeld et al. 2020): `a` is
the score the curve saturates at, `c` how fast it gets there. Every subset is scored on the same test examples,
so the interval resamples test examples (the same resample for every point: the points move together, as they
do when the test set changes) and refits: the spread of the refits' predictions is the interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

RESAMPLES = 500
PLATEAU_GAIN = 0.01  # a doubling of the data predicted to add less than this (upper bound): plateaued


@dataclass
class CurveFit:
    sizes: list[int]  # training examples of each point
    scores: list[float]  # the mean test score at each
    a: float  # the score the curve saturates at
    b: float
    c: float
    at_2x: tuple[float, float, float]  # predicted score at twice the largest size: (estimate, low, high)
    at_4x: tuple[float, float, float]
    gain_2x: tuple[float, float, float]  # at_2x - the score predicted at the largest size
    plateaued: bool
    target: float | None = None
    needed_for_target: tuple[float, float, float] | None = None  # examples for the target (inf: not reachable)
    resamples: int = 0
    at: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # predictions asked for by size


def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def _fit(sizes: np.ndarray, scores: np.ndarray, ceiling: float) -> tuple[float, float, float] | None:
    """Least squares with the saturation level between the best score seen and `ceiling` (a proportion cannot
    pass 1), b >= 0 (the score grows with data) and c in (0, 2]; None when the fit does not converge."""
    from scipy.optimize import OptimizeWarning, curve_fit

    top = min(float(scores.max()), ceiling - 1e-6)
    start = (min(ceiling, top + 0.05), max(top - float(scores.min()), 1e-3) * float(sizes.min()) ** 0.5, 0.5)
    bounds = ([top - 1e-9, 0.0, 1e-3], [ceiling, np.inf, 2.0])
    try:
        with warnings.catch_warnings():  # three points for three parameters leave no covariance: not needed here
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(power_law, sizes, scores, p0=start, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    return float(params[0]), float(params[1]), float(params[2])


def _examples_for(target: float, a: float, b: float, c: float) -> float:
    if target >= a:
        return math.inf
    if b == 0:
        return 0.0
    exponent = math.log(b / (a - target)) / c
    return math.exp(exponent) if exponent < math.log(1e12) else math.inf  # beyond any data set: not reachable


def _interval(values: list[float], estimate: float) -> tuple[float, float, float]:
    finite = np.asarray(values, dtype=float)
    return estimate, float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def fit_learning_curve(
    sizes: list[int], per_example: list[list[float]], ceiling: float = 1.0, target: float | None = None,
    resamples: int = RESAMPLES, seed: int = 0, at: tuple[int, ...] = (),
) -> CurveFit | None:  # fmt: skip
    """The curve through the points (training examples, each test example's score at that size); None when
    fewer than three points or the fit fails."""
    if len(sizes) < 3:
        return None
    matrix = np.asarray(per_example, dtype=float)  # points x test examples
    n = np.asarray(sizes, dtype=float)
    fitted = _fit(n, matrix.mean(axis=1), ceiling)
    if fitted is None:
        return None
    largest = float(n.max())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"2x": [], "4x": [], "gain": [], "need": [], **{str(n): [] for n in at}}
    for _ in range(resamples):
        pick = rng.integers(0, matrix.shape[1], matrix.shape[1])
        refit = _fit(n, matrix[:, pick].mean(axis=1), ceiling)
        if refit is None:
            continue
        ahead = power_law(np.asarray([largest, 2 * largest, 4 * largest]), *refit)
        draws["2x"].append(ahead[1])
        draws["4x"].append(ahead[2])
        draws["gain"].append(ahead[1] - ahead[0])
        for size in at:
            draws[str(size)].append(float(power_law(np.asarray([size], dtype=float), *refit)[0]))
        if target is not None:
            draws["need"].append(min(_examples_for(target, *refit), 1e12))  # inf cannot take a percentile
    now, twice, four = power_law(np.asarray([largest, 2 * largest, 4 * largest]), *fitted)
    gain = _interval(draws["gain"], float(twice - now)) if draws["gain"] else (float(twice - now),) * 3
    curve = CurveFit(
        sizes=[int(s) for s in sizes], scores=[float(s) for s in matrix.mean(axis=1)], a=fitted[0], b=fitted[1],
        c=fitted[2], at_2x=_interval(draws["2x"], float(twice)) if draws["2x"] else (float(twice),) * 3,
        at_4x=_interval(draws["4x"], float(four)) if draws["4x"] else (float(four),) * 3, gain_2x=gain,
        plateaued=gain[2] < PLATEAU_GAIN, target=target, resamples=len(draws["2x"]),
    )  # fmt: skip
    for size in at:
        point = float(power_law(np.asarray([size], dtype=float), *fitted)[0])
        curve.at[size] = _interval(draws[str(size)], point) if draws[str(size)] else (point,) * 3
    if target is not None:
        curve.needed_for_target = _interval(draws["need"], _examples_for(target, *fitted)) if draws["need"] else None
    return curve


def nested_subsets(groups: list[str | None], fractions: list[float], seed: int = 0) -> list[list[int]]:
    """Indices of nested training subsets, one per fraction (smallest first): each group (label, category) in one
    shuffled order, and a subset takes the first share of every group, so each subset keeps the split's mix and
    contains the smaller ones."""
    rng = np.random.default_rng(seed)
    by_group: dict[str | None, list[int]] = {}
    for i, group in enumerate(groups):
        by_group.setdefault(group, []).append(i)
    orders = {g: list(rng.permutation(members)) for g, members in by_group.items()}
    subsets = []
    for fraction in sorted(fractions):
        chosen = [int(i) for members in orders.values() for i in members[: max(1, round(fraction * len(members)))]]
        subsets.append(sorted(chosen))
    return subsets


def plot_curve(curve: CurveFit, path, metric: str = "score"):
    """The measured points, the fitted curve out to 4x the data, and the 2x/4x predictions with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    largest = max(curve.sizes)
    xs = np.geomspace(min(curve.sizes) / 2, 4 * largest, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, power_law(xs, curve.a, curve.b, curve.c), "-", label="fitted: a - b n^-c")
    ax.plot(curve.sizes, curve.scores, "o", label="measured")
    for times, (estimate, low, high) in ((2, curve.at_2x), (4, curve.at_4x)):
        ax.errorbar([times * largest], [estimate], yerr=[[estimate - low], [high - estimate]], fmt="s", capsize=4,
                    label=f"predicted at {times}x (95%)")  # fmt: skip
    if curve.target is not None:
        ax.axhline(curve.target, linestyle=":", color="grey", label="target")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
