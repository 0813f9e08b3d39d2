"""The TwinDNN cascade: a twin (binary/ternary) network answers, the original steps in.

Every input goes through the twin. A gate turns the twin's logits into a
confidence score (higher means more confident; the gates live in ``GATES``,
and ``register_gate`` adds one), and an input is **forwarded**
to the original network iff ``confidence < threshold`` (strict). So

* ``threshold = -inf`` forwards nothing (the system is the twin alone),
* ``threshold = +inf`` forwards everything (the system is the original alone),
* inputs with equal confidence always land on the same side of any threshold.

Thresholds are chosen on the ``val`` split and only applied to ``test``.
Accuracies are fractions in [0, 1]; ``forwarded_fraction`` is the share of
inputs that the original network has to process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .operating_points import (
    COUNT_COLUMNS,
    QUANTITY,
    SELECTIONS,
    categories,
    meets,
    most_accurate,
    select,
    test_summary,
)

SWEEP_COLUMNS = [
    "gate",
    "threshold",
    "forwarded_fraction",
    "system_accuracy",
    "twin_accuracy",
    "original_accuracy",
    "accuracy_recovery",
    "accuracy_loss",
    "kept_disagreement",
    *COUNT_COLUMNS,
]

# The test numbers of an operating point, each with its 95 % interval (twindnn.operating_points).
_TESTED = ["forwarded_fraction", "system_accuracy", "accuracy_recovery", "accuracy_loss", "kept_disagreement",
           "twin_accuracy", "original_accuracy", "gap"]
OPERATING_POINT_COLUMNS = [
    "gate",
    "selection",
    "delta",
    "target_kind",
    "target_value",
    "target_reached_val",
    "val_bound",
    "threshold",
    "val_forwarded_fraction",
    "val_system_accuracy",
    "val_accuracy_recovery",
    "val_accuracy_loss",
    "val_kept_disagreement",
    *(f"test_{name}{suffix}" for name in _TESTED for suffix in ("", "_ci95_low", "_ci95_high")),
    "test_recovery_meaningful",
    "target_met_test",
]


# --------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class Gate:
    """A gate: ``confidence_fn`` maps twin logits (N, C) to (N,) scores, higher = more confident."""

    name: str
    description: str  # what the score is, in words (used as an axis label)
    confidence_fn: Callable[[torch.Tensor], torch.Tensor]


# In registration order; the first is the default (the paper's gate).
GATES: dict[str, Gate] = {}


def register_gate(name: str, description: str):
    """Decorator: ``@register_gate("x", "...")`` on ``fn(logits) -> scores`` makes gate ``x`` usable everywhere."""
    if name == "oracle":  # the tables use "oracle" for the ideal gate's rows
        raise ValueError('"oracle" is reserved for the ideal gate.')

    def register(fn: Callable[[torch.Tensor], torch.Tensor]):
        GATES[name] = Gate(name, description, fn)
        return fn

    return register


def _shifted(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits shifted so each row's top one is 0 (exp cannot overflow), and ``sum(exp)`` per row."""
    z = logits - logits.amax(dim=1, keepdim=True)
    return z, z.exp().sum(dim=1)


@register_gate("max_softmax", "max softmax probability")
def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The largest softmax probability (the TwinDNN paper's gate): ``1 / sum(exp(z))`` as the top z is 0."""
    return 1.0 / _shifted(logits)[1]


@register_gate("margin", "top-1 minus top-2 softmax probability")
def margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability (the Big/Little DNN gate)."""
    z, total = _shifted(logits)
    second = z.topk(2, dim=1).values[:, 1]
    return (1.0 - second.exp()) / total


@register_gate("entropy", "minus softmax entropy (nats)")
def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Minus the softmax entropy in nats (0 is certain): ``sum p log p`` with ``log p = z - log(total)``."""
    z, total = _shifted(logits)
    return (z.exp() * z).sum(dim=1) / total - total.log()


@register_gate("logit_margin", "top-1 minus top-2 raw logit")
def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 raw logit, no softmax: the gate of the authors' FPGA code (their host program)."""
    top2 = logits.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


DEFAULT_GATE = next(iter(GATES))


def gate_names() -> list[str]:
    """The registered gates' names, the default first."""
    return list(GATES)


def get_gate(name: str) -> Gate:
    """The registered gate ``name``; a ValueError lists the valid names otherwise."""
    if name not in GATES:
        raise ValueError(f"unknown gate {name!r}; valid gates are {', '.join(GATES)}.")
    return GATES[name]


_CHUNK_ROWS = 4096  # bounds the float64 working copy for ImageNet-sized logits


def _check_logits(logits) -> np.ndarray:
    z = np.asarray(logits)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, C) with C >= 2, got {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinite values.")
    return z


def _check_gates(gates: Iterable[str]) -> list[str]:
    gates = list(gates)
    for name in gates:
        get_gate(name)
    return gates


def confidences(logits: np.ndarray, gates: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """``confidence`` for several gates (default: all registered) at once, chunk by chunk of ``logits``."""
    gates = _check_gates(GATES if gates is None else gates)
    z_all = _check_logits(logits)
    out = {name: np.empty(len(z_all), dtype=np.float64) for name in gates}
    for start in range(0, len(z_all), _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        # float64 keeps near-equal confidences apart that float32 would tie; np.array copies,
        # so read-only inputs (e.g. memory-mapped) are fine for torch.
        z = torch.from_numpy(np.array(z_all[rows], dtype=np.float64))
        for name in gates:
            scores = GATES[name].confidence_fn(z)
            if scores.shape != (len(z),):
                raise ValueError(f"gate {name!r} returned shape {tuple(scores.shape)}, expected ({len(z)},).")
            out[name][rows] = scores.numpy()
    return out


def confidence(logits: np.ndarray, gate: str) -> np.ndarray:
    """Confidence of each row of ``logits`` (N, C) under ``gate``; higher = more confident.

    See ``GATES`` for the gates (``max_softmax``, ``margin``, ``entropy`` and any
    registered with ``register_gate``). Computed in float64 from max-shifted
    logits, so large logits do not overflow.
    """
    return confidences(logits, [gate])[gate]


def forwarded_mask(confidences: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of the inputs forwarded to the original: ``confidence < threshold``."""
    return np.asarray(confidences) < threshold


# --------------------------------------------------------------------------- metrics


def accuracy_recovery(system_acc, twin_acc, original_acc):
    """Share of the twin-to-original accuracy gap that the cascade wins back.

    ``(system_acc - twin_acc) / (original_acc - twin_acc)``: 0 is the twin alone,
    1 the original alone. Undefined, and returned as NaN, when
    ``original_acc <= twin_acc`` (there is no gap to recover). Works element-wise
    on arrays; accuracies may also be given as correct counts over the same inputs.
    """
    system_acc, twin_acc, original_acc = (np.asarray(a, dtype=np.float64) for a in (system_acc, twin_acc, original_acc))
    gap = original_acc - twin_acc
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(gap > 0, (system_acc - twin_acc) / np.where(gap > 0, gap, 1.0), np.nan)
    return float(result) if result.ndim == 0 else result


def _correct(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.asarray(logits).argmax(axis=1) == np.asarray(labels)


def _check_pair(twin_logits, original_logits, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    twin_logits, original_logits, labels = np.asarray(twin_logits), np.asarray(original_logits), np.asarray(labels)
    n = len(labels)
    if n == 0:
        raise ValueError("no samples: labels are empty.")
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}.")
    for name, arr in (("twin_logits", twin_logits), ("original_logits", original_logits)):
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n}, C) to match the labels, got {arr.shape}.")
    return twin_logits, original_logits, labels


def _agree(twin_logits: np.ndarray, original_logits: np.ndarray) -> np.ndarray:
    return np.asarray(twin_logits).argmax(axis=1) == np.asarray(original_logits).argmax(axis=1)


def _sweep_scores(conf: np.ndarray, twin_ok: np.ndarray, orig_ok: np.ndarray, gate: str,
                  agree: np.ndarray) -> pd.DataFrame:
    n = len(conf)
    order = np.argsort(conf, kind="stable")
    conf_sorted = conf[order]
    thresholds = np.concatenate([[-np.inf], np.unique(conf_sorted), [np.inf]])
    # Forwarded count at threshold t is #{conf < t}; side="left" never splits a tie.
    n_forwarded = np.searchsorted(conf_sorted, thresholds, side="left")

    def forwarded(events):  # events among the n_forwarded least confident inputs, per threshold
        return np.concatenate([[0], np.cumsum(np.asarray(events)[order])])[n_forwarded]

    orig_only, twin_only = orig_ok & ~twin_ok, twin_ok & ~orig_ok
    counts = {"orig_only_forwarded": forwarded(orig_only), "twin_only_forwarded": forwarded(twin_only)}
    counts["orig_only_kept"] = int(orig_only.sum()) - counts["orig_only_forwarded"]
    counts["twin_only_kept"] = int(twin_only.sum()) - counts["twin_only_forwarded"]
    counts["kept_disagree"] = int((~agree).sum()) - forwarded(~agree)
    twin_correct, orig_correct = int(twin_ok.sum()), int(orig_ok.sum())
    # forwarded inputs answered by the original, kept ones by the twin
    system_correct = twin_correct + counts["orig_only_forwarded"] - counts["twin_only_forwarded"]
    kept = n - n_forwarded
    return pd.DataFrame(
        {
            "gate": gate,
            "threshold": thresholds,
            "forwarded_fraction": n_forwarded / n,
            "system_accuracy": system_correct / n,
            "twin_accuracy": twin_correct / n,
            "original_accuracy": orig_correct / n,
            # From counts, so that e.g. 9/10 compares equal to a target of 0.9.
            "accuracy_recovery": accuracy_recovery(system_correct, twin_correct, orig_correct),
            "accuracy_loss": (orig_correct - system_correct) / n,
            "kept_disagreement": np.where(kept > 0, counts["kept_disagree"] / np.maximum(kept, 1), 0.0),
            "images": n,
            "forwarded": n_forwarded,
            **counts,
        },
        columns=SWEEP_COLUMNS,
    )


def _threshold_scores(conf, twin_ok, orig_ok, gate: str, threshold: float, agree=None) -> dict:
    forward = forwarded_mask(conf, threshold)
    system_ok = np.where(forward, orig_ok, twin_ok)
    out = {
        "gate": gate,
        "threshold": float(threshold),
        "forwarded_fraction": float(forward.mean()),
        "system_accuracy": float(system_ok.mean()),
        "twin_accuracy": float(twin_ok.mean()),
        "original_accuracy": float(orig_ok.mean()),
        "accuracy_recovery": accuracy_recovery(system_ok.sum(), twin_ok.sum(), orig_ok.sum()),
    }
    if agree is not None:
        out.update(test_summary(categories(twin_ok, orig_ok, forward, agree)))
    return out


def sweep(twin_logits: np.ndarray, original_logits: np.ndarray, labels: np.ndarray, gate: str) -> pd.DataFrame:
    """Cascade accuracy at every threshold that changes the forwarded set.

    One row per distinct threshold: ``-inf``, every distinct confidence value of
    the twin, and ``+inf``, in increasing order (so ``forwarded_fraction`` never
    decreases down the table). Columns: ``SWEEP_COLUMNS``. Runs in
    O(N log N): one sort, then prefix sums of correct answers.
    """
    twin_logits, original_logits, labels = _check_pair(twin_logits, original_logits, labels)
    conf = confidence(twin_logits, gate)
    return _sweep_scores(conf, _correct(twin_logits, labels), _correct(original_logits, labels), gate,
                         _agree(twin_logits, original_logits))


def evaluate_threshold(
    twin_logits: np.ndarray, original_logits: np.ndarray, labels: np.ndarray, gate: str, threshold: float
) -> dict:
    """Apply a fixed gate threshold (chosen elsewhere, e.g. on val) to these inputs.

    Forwards the inputs with ``confidence < threshold``. Returns a dict with the
    keys of ``SWEEP_COLUMNS``.
    """
    twin_logits, original_logits, labels = _check_pair(twin_logits, original_logits, labels)
    conf = confidence(twin_logits, gate)
    return _threshold_scores(conf, _correct(twin_logits, labels), _correct(original_logits, labels), gate, threshold)


def oracle(twin_logits: np.ndarray, original_logits: np.ndarray, labels: np.ndarray) -> dict:
    """The ideal gate: forward exactly the inputs that the twin gets wrong.

    Returns ``forwarded_fraction``, ``system_accuracy`` and ``accuracy_recovery``
    (plus the twin's and the original's accuracy), an upper bound for any gate.
    """
    twin_logits, original_logits, labels = _check_pair(twin_logits, original_logits, labels)
    twin_ok = _correct(twin_logits, labels)
    orig_ok = _correct(original_logits, labels)
    system_ok = twin_ok | orig_ok
    return {
        "forwarded_fraction": float((~twin_ok).mean()),
        "system_accuracy": float(system_ok.mean()),
        "accuracy_recovery": accuracy_recovery(system_ok.sum(), twin_ok.sum(), orig_ok.sum()),
        "twin_accuracy": float(twin_ok.mean()),
        "original_accuracy": float(orig_ok.mean()),
    }


# --------------------------------------------------------------------------- operating points


def _point(row: pd.Series, gate: str, kind: str, value: float, reached: bool, selection: str = "point",
           delta: float = float("nan"), val_bound: float = float("nan")) -> dict:
    return {
        "gate": gate,
        "selection": selection,
        "delta": float(delta),
        "target_kind": kind,
        "target_value": float(value),
        "target_reached_val": bool(reached),
        "val_bound": float(val_bound),
        "threshold": float(row["threshold"]),
        **{f"val_{k}": float(row[k]) for k in ("forwarded_fraction", "system_accuracy", "accuracy_recovery",
                                               "accuracy_loss", "kept_disagreement")},
    }


def _by_gate(val_sweep: pd.DataFrame):
    if "gate" not in val_sweep.columns:
        yield "", val_sweep
        return
    yield from val_sweep.groupby("gate", sort=False)


_VAL_COLUMNS = OPERATING_POINT_COLUMNS[:13]


def choose(val_sweep: pd.DataFrame, targets: dict, selection: str = "point", delta: float = 0.1) -> pd.DataFrame:
    """Per gate, target kind and target value, the val threshold that ``selection`` chooses
    (:func:`twindnn.operating_points.select`: ``point`` or ``guaranteed`` at level ``delta``).

    ``targets`` maps a target kind (``accuracy_recovery``, ``max_accuracy_loss``,
    ``max_disagreement``) to its values. Columns: the val half of ``OPERATING_POINT_COLUMNS``.
    """
    points = []
    for gate, rows in _by_gate(val_sweep):
        for kind, values in targets.items():
            for target in values:
                label, reached, used = select(rows, kind, float(target), selection, delta)
                points.append(_point(rows.loc[label], gate, kind, target, reached, selection,
                                     delta if selection == "guaranteed" else float("nan"), used))
    return pd.DataFrame(points, columns=_VAL_COLUMNS)


def choose_operating_points(val_sweep: pd.DataFrame, targets: Iterable[float]) -> pd.DataFrame:
    """Per gate and target recovery, the val threshold that forwards least (the point rule).

    For each target, the row of ``val_sweep`` with the smallest
    ``forwarded_fraction`` whose ``accuracy_recovery >= target`` (ties: lowest
    threshold). If no row reaches the target (or recovery is undefined because
    the twin is not worse than the original), the row with the highest
    ``system_accuracy`` is taken and ``target_reached_val`` is False.
    """
    return choose(val_sweep, {"accuracy_recovery": list(targets)}, "point")


def choose_by_budget(val_sweep: pd.DataFrame, budgets: Iterable[float]) -> pd.DataFrame:
    """Per gate and forwarding budget, the most accurate val threshold within budget.

    For each budget b, among rows with ``forwarded_fraction <= b`` the one with the
    highest ``system_accuracy`` (ties: less forwarding, then lowest threshold).
    The ``-inf`` row forwards nothing, so every budget >= 0 is reachable.
    Same columns as :func:`choose` with target_kind "forwarded_budget".
    """
    points = []
    for gate, rows in _by_gate(val_sweep):
        for budget in budgets:
            within = rows[rows["forwarded_fraction"] <= budget]
            if len(within):
                points.append(_point(most_accurate(within), gate, "forwarded_budget", budget, True))
            else:
                least = rows.sort_values(["forwarded_fraction", "threshold"], kind="stable").iloc[0]
                points.append(_point(least, gate, "forwarded_budget", budget, False))
    return pd.DataFrame(points, columns=_VAL_COLUMNS)


# --------------------------------------------------------------------------- whole run

LOGIT_KEYS = ("val_logits", "val_labels", "test_logits", "test_labels")


def _check_logit_files(twin: Mapping, original: Mapping) -> None:
    for name, d in (("twin", twin), ("original", original)):
        missing = [k for k in LOGIT_KEYS if k not in d]
        if missing:
            raise ValueError(f"{name} logits file lacks {missing}; expected keys {list(LOGIT_KEYS)}.")
    for split in ("val", "test"):
        a, b = np.asarray(twin[f"{split}_labels"]), np.asarray(original[f"{split}_labels"])
        if a.shape != b.shape or not np.array_equal(a, b):
            raise ValueError(
                f"{split} labels of the twin and the original logits differ "
                f"(shapes {a.shape} vs {b.shape}); both must be computed on the same {split} split, in the same order."
            )


def _target_met(points: pd.DataFrame) -> list:
    met = []
    for p in points.to_dict("records"):
        if p["target_kind"] == "forwarded_budget":
            met.append(bool(p["test_forwarded_fraction"] <= p["target_value"]))
            continue
        met.append(bool(meets(p[f"test_{QUANTITY[p['target_kind']]}"], p["target_kind"], p["target_value"])))
    return met


def run_cascade(
    twin: Mapping,
    original: Mapping,
    gates: Sequence[str] | None = None,
    targets: Sequence[float] | Mapping = (),
    budgets: Sequence[float] = (),
    selections: Sequence[str] = ("point",),
    delta: float = 0.1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sweep every gate (default: all registered) on val and test, choose thresholds on val, report them on test.

    ``twin`` and ``original`` map ``val_logits``, ``val_labels``, ``test_logits``,
    ``test_labels`` to arrays (as loaded from the logits ``.npz`` files). ``targets``: recovery
    targets, or a mapping of target kind to values (:func:`choose`); each is chosen by every rule
    of ``selections`` (``point``, ``guaranteed`` at level ``delta``).

    Returns ``(sweep_df, operating_points_df)``. ``sweep_df`` has a ``split``
    column ("val"/"test") before ``SWEEP_COLUMNS``, and one row per split with
    gate "oracle" (threshold NaN). ``operating_points_df`` has one row per gate x
    target x selection (then per gate x budget), columns ``OPERATING_POINT_COLUMNS``: the val
    estimate, and the test value with its 95 % interval and whether the target was met there.
    """
    _check_logit_files(twin, original)
    gates = _check_gates(GATES if gates is None else gates)
    targets = dict(targets) if isinstance(targets, Mapping) else {"accuracy_recovery": list(targets)}
    for selection in selections:
        if selection not in SELECTIONS:
            raise ValueError(f"selection {selection!r}: use one of {SELECTIONS}")
    frames, scored = [], {}
    for split in ("val", "test"):
        args = _check_pair(twin[f"{split}_logits"], original[f"{split}_logits"], twin[f"{split}_labels"])
        twin_ok, orig_ok = _correct(args[0], args[2]), _correct(args[1], args[2])
        agree = _agree(args[0], args[1])
        conf = confidences(args[0], gates)
        scored[split] = (conf, twin_ok, orig_ok, agree)
        for gate in gates:
            frames.append(_sweep_scores(conf[gate], twin_ok, orig_ok, gate, agree).assign(split=split))
        frames.append(pd.DataFrame([{**oracle(*args), "gate": "oracle", "threshold": np.nan, "split": split}]))
    sweep_df = pd.concat(frames, ignore_index=True)[["split", *SWEEP_COLUMNS]]

    val = sweep_df[(sweep_df["split"] == "val") & sweep_df["gate"].isin(gates)]
    chosen = [choose(val, targets, selection, delta) for selection in selections if any(targets.values())]
    if len(budgets):
        chosen.append(choose_by_budget(val, budgets))
    if not chosen:
        return sweep_df, pd.DataFrame(columns=OPERATING_POINT_COLUMNS)
    points = pd.concat(chosen, ignore_index=True)

    conf, twin_ok, orig_ok, agree = scored["test"]
    test = pd.DataFrame(
        [_threshold_scores(conf[g], twin_ok, orig_ok, g, t, agree) for g, t in zip(points["gate"], points["threshold"])],
        index=points.index,
    )
    for column in _TESTED:
        for suffix in ("", "_ci95_low", "_ci95_high"):
            points[f"test_{column}{suffix}"] = test[column + suffix]
    points["test_recovery_meaningful"] = test["recovery_meaningful"]
    points["target_met_test"] = _target_met(points)
    return sweep_df, points[OPERATING_POINT_COLUMNS]


def rescore_operating_points(twin_logits: Mapping, original_logits: Mapping, points: pd.DataFrame) -> pd.DataFrame:
    """Apply the operating points' val-chosen thresholds on test with another original, plus the oracle.

    For pairing the twin with a different original than the one the thresholds were
    chosen with (e.g. the 8-bit original an FPGA runs). ``points`` needs gate,
    target_kind, target_value, threshold (and ``selection``, kept where given). One row per point,
    then one for the oracle gate: those columns, then forwarded_fraction, system_accuracy,
    twin_accuracy, original_accuracy, accuracy_recovery on the test split, each of the first
    three with its 95 % interval (``_ci95_low``, ``_ci95_high``).
    """
    twin_test, labels = twin_logits["test_logits"], twin_logits["test_labels"]
    original_test = original_logits["test_logits"]
    twin_ok, orig_ok = _correct(twin_test, labels), _correct(original_test, labels)
    agree = _agree(twin_test, original_test)
    scores = ("forwarded_fraction", "system_accuracy", "twin_accuracy", "original_accuracy", "accuracy_recovery")
    intervals = [f"{k}{s}" for k in scores[:2] + ("accuracy_recovery",) for s in ("_ci95_low", "_ci95_high")]
    keys = [k for k in ("gate", "selection", "target_kind", "target_value", "threshold") if k in points.columns]
    conf = confidences(twin_test, sorted(set(points["gate"])))  # once per gate, not per point
    rows = []
    for p in points.to_dict("records"):
        r = _threshold_scores(conf[p["gate"]], twin_ok, orig_ok, p["gate"], float(p["threshold"]), agree)
        rows.append({**{k: p[k] for k in keys}, **{k: r[k] for k in (*scores, *intervals)}})
    o = oracle(twin_test, original_test, labels)
    oracle_forward = ~twin_ok
    r = test_summary(categories(twin_ok, orig_ok, oracle_forward, agree))
    rows.append({"gate": "oracle", "target_kind": "oracle", "target_value": np.nan, "threshold": np.nan,
                 **({"selection": "oracle"} if "selection" in keys else {}),
                 **{k: o[k] for k in scores}, **{k: r[k] for k in intervals}})
    return pd.DataFrame(rows)
