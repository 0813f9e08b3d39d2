"""Finite-sample bounds and intervals for the cascade's numbers.

- :func:`binomial_upper` / :func:`binomial_lower`: one-sided exact (Clopper-Pearson) confidence
  bounds on a probability from ``k`` events in ``n`` draws: the binomial tail inversion that
  Geifman & El-Yaniv's selective-guaranteed-risk bound uses (NeurIPS 2017).
- :func:`clopper_pearson`: the two-sided exact interval (an accuracy, a forwarded share).
- :func:`bootstrap_counts`: the nonparametric bootstrap of a statistic of paired per-image
  outcomes. Every number of a cascade at a fixed threshold (accuracies, recovery, accuracy loss,
  forwarded share) depends on an image only through its outcome category (twin right or wrong,
  original right or wrong, forwarded or kept), so resampling images with replacement is drawing the
  category counts from a multinomial: exact, and cheap for any number of images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy.stats import beta

LEVEL = 0.95  # the level of every interval in the tables (their columns say ci95)


def binomial_upper(k, n, delta: float):
    """Upper bound U with P(p > U) <= delta for ``k`` events in ``n`` draws (1 where n is 0)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = np.where(k >= n, 1.0, beta.ppf(1 - delta, k + 1, np.maximum(n - k, 1e-300)))
    return np.where(n > 0, upper, 1.0)


def binomial_lower(k, n, delta: float):
    """Lower bound L with P(p < L) <= delta for ``k`` events in ``n`` draws (0 where k is 0)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(k <= 0, 0.0, beta.ppf(delta, np.maximum(k, 1e-300), n - k + 1))
    return np.where(n > 0, lower, 0.0)


def clopper_pearson(k, n, level: float = LEVEL) -> tuple[float, float]:
    """Exact two-sided interval of a probability from ``k`` events in ``n`` draws."""
    tail = (1 - level) / 2
    return float(binomial_lower(k, n, tail)), float(binomial_upper(k, n, tail))


def bootstrap_counts(counts: np.ndarray, statistics: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                     level: float = LEVEL, reps: int = 2000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of ``statistics`` over images, from the images' category counts.

    ``counts``: how many images fall in each outcome category; each statistic maps an array of
    count vectors (reps, categories) to one value per row (NaN where undefined; those resamples
    are left out). All statistics are read off one set of resamples. Seeded: the same counts give
    the same intervals.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return {name: (float("nan"), float("nan")) for name in statistics}
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=reps)
    tail = (1 - level) / 2
    out = {}
    for name, statistic in statistics.items():
        values = np.asarray(statistic(draws), dtype=float)
        values = values[np.isfinite(values)]
        out[name] = ((float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))) if len(values)
                     else (float("nan"), float("nan")))
    return out
