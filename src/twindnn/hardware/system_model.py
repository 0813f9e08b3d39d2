"""System model of TwinDNN on one FPGA: throughput and latency from the two networks' figures.

With ``f`` the forwarded fraction (share of inputs the gate sends to the original):

- TwinDNN, both networks running at once (the paper's design):
  ``fps = min(fps_twin, fps_original / f)``;
- Big/Little, the same two networks one after the other on the same device:
  ``fps = 1 / (1 / fps_twin + f / fps_original)``;
- mean latency (every input passes the twin, a share ``f`` then the original):
  ``latency = latency_twin + f * latency_original``;
- the original alone (whole device), the twin alone (whole device), and the oracle gate
  (forwards exactly the inputs the twin gets wrong).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SOURCE_ESTIMATE = "FINN+ estimate"
SOURCE_MEASURED = "measured on board"


def system_fps(fps_twin, fps_original, forwarded_fraction, mode: str = "parallel"):
    """TwinDNN system throughput in frames/s (``parallel`` or ``sequential`` = Big/Little)."""
    fps_twin, fps_original, f = (np.asarray(x, dtype=np.float64) for x in (fps_twin, fps_original,
                                                                          forwarded_fraction))
    if np.any(f < 0) or np.any(f > 1):
        raise ValueError("forwarded_fraction must lie in [0, 1]")
    with np.errstate(divide="ignore"):
        if mode == "parallel":
            out = np.minimum(fps_twin, np.where(f > 0, fps_original / np.where(f > 0, f, 1.0), np.inf))
        elif mode == "sequential":
            out = 1.0 / (1.0 / fps_twin + f / fps_original)
        else:
            raise ValueError(f"mode {mode!r}: expected 'parallel' or 'sequential'")
    return float(out) if out.ndim == 0 else out


def mean_latency_ms(latency_twin_ms, latency_original_ms, forwarded_fraction):
    """Mean per-input latency: the twin always, the original for the forwarded share."""
    return np.asarray(latency_twin_ms) + np.asarray(forwarded_fraction) * np.asarray(latency_original_ms)


def system_rows(board: dict, twin: str, twin_designs: pd.DataFrame, original_designs: pd.DataFrame,
                points: pd.DataFrame, utilization: float) -> pd.DataFrame:
    """One row per operating point (plus the oracle): accuracies, throughputs, gains, latency.

    ``points`` needs gate, target_kind, target_value, forwarded_fraction, twin_accuracy,
    original_accuracy, system_accuracy, accuracy_recovery.
    """
    from .colocate import best_pair, best_single

    alone = best_single(original_designs, board, utilization)
    twin_alone = best_single(twin_designs, board, utilization)
    alone_fits = alone is not None
    if alone is None:  # not even the slowest folding fits: report it, flagged
        alone = {"estimated_throughput_fps": float(original_designs["estimated_throughput_fps"].iloc[0]),
                 "estimated_latency_ms": float(original_designs["estimated_latency_ms"].iloc[0])}
    rows = []
    for _, p in points.iterrows():
        f = float(p["forwarded_fraction"])
        par = best_pair(twin_designs, original_designs, board, f, "parallel", utilization)
        seq = best_pair(twin_designs, original_designs, board, f, "sequential", utilization)
        row = {
            "board": board["name"], "twin": twin, "gate": p["gate"], "target_kind": p.get("target_kind", ""),
            "target_value": p.get("target_value", np.nan), "forwarded_fraction": f,
            "twin_accuracy": p["twin_accuracy"], "original_accuracy": p["original_accuracy"],
            "twindnn_accuracy": p["system_accuracy"], "accuracy_recovery": p["accuracy_recovery"],
            "original_alone_fps": alone["estimated_throughput_fps"],
            "original_alone_latency_ms": alone["estimated_latency_ms"],
            "twin_alone_fps": twin_alone["estimated_throughput_fps"] if twin_alone else np.nan,
            "fits": par is not None, "original_alone_fits": alone_fits,
        }
        if par is not None:
            row.update({
                "twin_fps": par["twin_fps"], "original_fps": par["original_fps"],
                "twindnn_fps": par["system_fps"],
                "mean_latency_ms": float(mean_latency_ms(par["twin_latency_ms"], par["original_latency_ms"], f)),
                "throughput_gain": par["system_fps"] / alone["estimated_throughput_fps"],
                **{k: v for k, v in par.items() if k.startswith("total_")},
                "twin_design": par["twin_design"], "original_design": par["original_design"],
            })
        if seq is not None:
            row.update({"big_little_fps": seq["system_fps"],
                        "big_little_gain": seq["system_fps"] / alone["estimated_throughput_fps"]})
        row["source"] = SOURCE_ESTIMATE
        rows.append(row)
    return pd.DataFrame(rows)


def operating_points_with(twin_logits: dict, original_logits: dict, points: pd.DataFrame) -> pd.DataFrame:
    """Re-score the cascade's operating points (thresholds chosen on val) on the test split with the
    original that the FPGA runs (the 8-bit one), and add the oracle gate."""
    from ..cascade import evaluate_threshold, oracle

    rows = []
    for _, p in points.iterrows():
        r = evaluate_threshold(twin_logits["test_logits"], original_logits["test_logits"],
                               twin_logits["test_labels"], p["gate"], float(p["threshold"]))
        rows.append({"gate": p["gate"], "target_kind": p["target_kind"], "target_value": p["target_value"],
                     "threshold": p["threshold"], **{k: r[k] for k in ("forwarded_fraction", "system_accuracy",
                                                                       "twin_accuracy", "original_accuracy",
                                                                       "accuracy_recovery")}})
    o = oracle(twin_logits["test_logits"], original_logits["test_logits"], twin_logits["test_labels"])
    rows.append({"gate": "oracle", "target_kind": "oracle", "target_value": np.nan, "threshold": np.nan,
                 **{k: o[k] for k in ("forwarded_fraction", "system_accuracy", "twin_accuracy",
                                      "original_accuracy", "accuracy_recovery")}})
    return pd.DataFrame(rows)
