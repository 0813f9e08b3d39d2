"""Operating points: which gate threshold to deploy for a target, chosen on val, and what it gives
on test, with its uncertainty.

Targets (``TARGET_KINDS``), each a property of the whole system at a threshold:

- ``accuracy_recovery`` r: the cascade wins back at least the share r of the accuracy the twin
  loses against the original (meaningful only where that gap is clearly above 0);
- ``max_accuracy_loss`` e: the cascade is at most e (a fraction: 0.005 is half a point) less
  accurate than the original alone;
- ``max_disagreement`` a: on the inputs the twin keeps, it predicts another class than the original
  at most a share a of the time (what the forwarded share buys back, label-free).

Selection rules (``SELECTIONS``):

- ``point``: the threshold with the smallest forwarded share whose **val estimate** meets the
  target. Nothing holds on unseen data: at the boundary the test value misses the target about
  half the time.
- ``guaranteed``: Learn-then-Test (Angelopoulos, Bates, Candes, Jordan & Lei, 2021, "Learn then
  Test: Calibrating Predictive Algorithms to Achieve Risk Control") with **fixed-sequence
  testing**. Each threshold t carries the null hypothesis "t misses the target"; the thresholds
  are tested in a fixed order, from forwarding everything towards forwarding nothing, each at
  level ``delta``, and testing stops at the first threshold whose hypothesis is not rejected; the
  last rejected one (the least forwarding) is chosen. A hypothesis is rejected when a one-sided
  finite-sample bound at level ``delta`` meets the target: exact binomial (Clopper-Pearson) bounds,
  as in Geifman & El-Yaniv's selective guaranteed risk (NeurIPS 2017), on the probabilities the
  target is made of (union bound over them). Fixed-sequence testing controls the family-wise
  error at ``delta`` without splitting it over the thresholds.

  **Guarantee.** If the val images and the images the system will see are exchangeable (drawn
  from one distribution, e.g. a random split of one set), then with probability at least
  ``1 - delta`` over the draw of val, the chosen threshold meets the target on that distribution,
  i.e. in expectation over unseen inputs; a finite test split scatters around it. Forwarding
  everything always meets every target (the system is the original), so the rule never fails to
  return a threshold: with too little val data it forwards more, never less. Assumptions beyond
  exchangeability: the candidate thresholds are val's distinct confidences, a mild dependence on
  the val split the finite-sample bound does not account for; ``accuracy_recovery`` assumes the
  original is more accurate than the twin.

On test, every operating point reports its numbers with 95 % intervals (:mod:`twindnn.stats`):
exact Clopper-Pearson for accuracies and the forwarded share, the seeded bootstrap over test
images for recovery, accuracy loss and the original-twin gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import binomial_lower, binomial_upper, bootstrap_counts, clopper_pearson

TARGET_KINDS = ("accuracy_recovery", "max_accuracy_loss", "max_disagreement")
SELECTIONS = ("point", "guaranteed")

# Per threshold of a sweep, the counts the targets and their bounds are made of.
COUNT_COLUMNS = ["images", "forwarded", "orig_only_forwarded", "orig_only_kept", "twin_only_forwarded",
                 "twin_only_kept", "kept_disagree"]


# --------------------------------------------------------------------------- per-threshold estimates


# The quantity each target kind bounds: a column of a sweep, and of the test numbers.
QUANTITY = {"accuracy_recovery": "accuracy_recovery", "max_accuracy_loss": "accuracy_loss",
            "max_disagreement": "kept_disagreement"}


def estimate(rows: pd.DataFrame, kind: str) -> np.ndarray:
    """The val estimate of the target's quantity at each sweep row (NaN where undefined)."""
    if kind not in QUANTITY:
        raise ValueError(f"target kind {kind!r}: use one of {TARGET_KINDS}")
    return rows[QUANTITY[kind]].to_numpy(float)


def most_accurate(rows: pd.DataFrame) -> pd.Series:
    """The row of highest system accuracy; among equals the least forwarding, then the lowest threshold."""
    ranked = rows.sort_values(["system_accuracy", "forwarded_fraction", "threshold"], ascending=[False, True, True],
                              kind="stable")
    return ranked.iloc[0]


def meets(value, kind: str, target: float):
    """Whether ``value`` (an estimate or a bound) meets ``target`` of ``kind``."""
    value = np.asarray(value, dtype=float)
    if kind == "accuracy_recovery":
        return value >= target
    return value <= target


def bound(rows: pd.DataFrame, kind: str, target: float, delta: float) -> np.ndarray:
    """The one-sided level-``delta`` bound of the target's quantity at each row: a lower bound of
    the recovery margin (>= 0 meets ``target``), an upper bound of the accuracy loss or of the kept
    inputs' disagreement. Forwarding everything meets every target exactly."""
    n = rows["images"].to_numpy(float)
    everything = rows["forwarded"].to_numpy(float) >= n
    c = {k: rows[k].to_numpy(float) for k in COUNT_COLUMNS}
    if kind == "accuracy_recovery":
        # recovery >= r  <=>  E[(orig_ok - twin_ok) * (forwarded - r)] >= 0: four event probabilities
        d = delta / 4
        margin = ((1 - target) * binomial_lower(c["orig_only_forwarded"], n, d)
                  - target * binomial_upper(c["orig_only_kept"], n, d)
                  - (1 - target) * binomial_upper(c["twin_only_forwarded"], n, d)
                  + target * binomial_lower(c["twin_only_kept"], n, d))
        return np.where(everything, np.inf, margin)
    if kind == "max_accuracy_loss":
        loss = binomial_upper(c["orig_only_kept"], n, delta / 2) - binomial_lower(c["twin_only_kept"], n, delta / 2)
        return np.where(everything, 0.0, loss)
    if kind == "max_disagreement":
        kept = n - c["forwarded"]
        return np.where(kept > 0, binomial_upper(c["kept_disagree"], kept, delta), 0.0)
    raise ValueError(f"target kind {kind!r}: use one of {TARGET_KINDS}")


def _bound_meets(value, kind: str, target: float):
    return np.asarray(value) >= 0 if kind == "accuracy_recovery" else meets(value, kind, target)


# --------------------------------------------------------------------------- selection on val


def select(rows: pd.DataFrame, kind: str, target: float, selection: str, delta: float) -> tuple[int, bool, float]:
    """(row label of the chosen threshold, whether its val estimate meets the target, the bound
    used: NaN for the point rule) among one gate's val sweep ``rows``.

    ``point``: the least forwarding row whose estimate meets the target (ties: lowest threshold);
    where none does, the most accurate row (ties: least forwarding), and the target is not met.
    ``guaranteed``: fixed-sequence testing from the most forwarding row (see the module docstring).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection {selection!r}: use one of {SELECTIONS}")
    ordered = rows.sort_values(["forwarded_fraction", "threshold"], kind="stable")
    values = estimate(ordered, kind)
    if selection == "point":
        ok = meets(values, kind, target)
        if ok.any():
            return ordered.index[int(np.argmax(ok))], True, float("nan")
        return most_accurate(ordered).name, False, float("nan")
    descending = ordered.iloc[::-1]
    bounds = bound(descending, kind, target, delta)
    passed = _bound_meets(bounds, kind, target)
    first_failure = int(np.argmin(passed)) if not passed.all() else len(passed)
    chosen = max(first_failure - 1, 0)  # the forward-everything row always passes
    label = descending.index[chosen]
    return label, bool(meets(estimate(descending.iloc[[chosen]], kind), kind, target)[0]), float(bounds[chosen])


# --------------------------------------------------------------------------- test intervals

# Outcome category of an image at a threshold: 8 * twin right + 4 * original right + 2 * forwarded
# + predictions agree. Every number below is a function of the category counts.
CATEGORIES = 16


def categories(twin_ok, orig_ok, forwarded, agree) -> np.ndarray:
    """Per image, its outcome category (see :data:`CATEGORIES`)."""
    return (8 * np.asarray(twin_ok, int) + 4 * np.asarray(orig_ok, int) + 2 * np.asarray(forwarded, int)
            + np.asarray(agree, int))


def _parts(counts: np.ndarray) -> dict[str, np.ndarray]:
    c = np.asarray(counts, dtype=float).reshape(-1, 2, 2, 2, 2)  # twin, orig, forwarded, agree
    n = c.sum(axis=(1, 2, 3, 4))
    twin = c[:, 1].sum(axis=(1, 2, 3))
    orig = c[:, :, 1].sum(axis=(1, 2, 3))
    system = c[:, :, 1, 1].sum(axis=(1, 2)) + c[:, 1, :, 0].sum(axis=(1, 2))
    forwarded = c[:, :, :, 1].sum(axis=(1, 2, 3))
    kept = n - forwarded
    kept_disagree = c[:, :, :, 0, 0].sum(axis=(1, 2))
    return {"n": n, "twin": twin, "orig": orig, "system": system, "forwarded": forwarded, "kept": kept,
            "kept_disagree": kept_disagree}


def _recovery(p):
    gap = p["orig"] - p["twin"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gap > 0, (p["system"] - p["twin"]) / np.where(gap > 0, gap, 1), np.nan)


STATISTICS = {
    "accuracy_recovery": _recovery,
    "accuracy_loss": lambda p: (p["orig"] - p["system"]) / p["n"],
    "gap": lambda p: (p["orig"] - p["twin"]) / p["n"],
    "kept_disagreement": lambda p: np.where(p["kept"] > 0, p["kept_disagree"] / np.maximum(p["kept"], 1), 0.0),
}
BINOMIAL = {"system_accuracy": "system", "forwarded_fraction": "forwarded", "twin_accuracy": "twin",
            "original_accuracy": "orig"}


def test_summary(category: np.ndarray, seed: int = 0) -> dict:
    """The test split's numbers at one threshold, each with its 95 % interval (``_ci95_low`` /
    ``_ci95_high``), from the images' outcome categories; and ``recovery_meaningful``: whether the
    original-twin gap's interval lies above 0 (else recovery is a ratio of noise)."""
    counts = np.bincount(np.asarray(category, int), minlength=CATEGORIES)
    p = {k: float(v[0]) for k, v in _parts(counts[None]).items()}
    out = {}
    for name, part in BINOMIAL.items():
        out[name] = p[part] / p["n"]
        out[f"{name}_ci95_low"], out[f"{name}_ci95_high"] = clopper_pearson(p[part], p["n"])
    intervals = bootstrap_counts(counts, {name: (lambda draws, fn=fn: fn(_parts(draws)))
                                          for name, fn in STATISTICS.items()}, seed=seed)
    for name, fn in STATISTICS.items():
        out[name] = float(fn({k: np.array([v]) for k, v in p.items()})[0])
        out[f"{name}_ci95_low"], out[f"{name}_ci95_high"] = intervals[name]
    out["recovery_meaningful"] = bool(out["gap_ci95_low"] > 0)
    return out
