"""The twin + original pair on one FPGA, and the baselines beside it, from each network's searched
designs (:mod:`twindnn.hardware.search`).

- **replication**: ``k`` instances of one design behind one input stream (``k`` times the rate
  and the resources; the stream splitter is not modelled);
- **pairs**: the fastest twin and original designs (and replica counts) that fit together, per
  operating point and scheduler (:func:`best_pair`); the original alone on the whole device
  (:func:`best_alone`); the system table with TwinDNN and every baseline (:func:`system_rows`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..cascade import accuracy_recovery
from ..system.model import (
    SCHEDULERS,
    SOURCE_ESTIMATE,
    original_direct_share,
    system_accuracy,
    system_fps,
    time_shared_fps,
)
from .boards import RESOURCES
from .search import budget, fits


def replicas_that_fit(row, board: dict, utilization: float, max_replicas: int, used: dict | None = None) -> int:
    """The most instances of a design that fit beside ``used`` resources (0 if none)."""
    cap = budget(board, utilization)
    used = used or {r: 0.0 for r in RESOURCES}
    k = max_replicas
    for r in RESOURCES:
        need = float(row[r])
        if need > 0:
            k = min(k, int(math.floor((cap[r] - used[r] + 1e-9) / need)))
    return max(k, 0)


def best_alone(designs: pd.DataFrame, board: dict, utilization: float, max_replicas: int,
               replicate: bool = True) -> dict | None:
    """The fastest whole-device use of one network: a design, times the replicas that fit."""
    best = None
    for _, d in designs.iterrows():
        k = replicas_that_fit(d, board, utilization, max_replicas if replicate else 1)
        if k >= 1 and (best is None or k * d["estimated_throughput_fps"] > best["fps"]):
            best = {"design": int(d["design"]), "replicas": k, "fps": k * float(d["estimated_throughput_fps"]),
                    "latency_ms": float(d["estimated_latency_ms"]), **{r: k * float(d[r]) for r in RESOURCES}}
    return best


def best_pair(twin_designs: pd.DataFrame, original_designs: pd.DataFrame, board: dict, forwarded_fraction: float,
              scheduler: str, utilization: float, max_replicas: int = 1) -> dict | None:
    """The twin and original designs (and replicas) that maximise the scheduler's throughput and fit together."""
    best = None
    for _, t in twin_designs.iterrows():
        for k_t in range(1, max_replicas + 1):
            used = {r: k_t * float(t[r]) for r in RESOURCES}
            if not fits(used, board, utilization):
                break
            for _, o in original_designs.iterrows():
                k_o = replicas_that_fit(o, board, utilization, max_replicas, used)
                if k_o < 1:
                    continue
                r_t, r_o = k_t * float(t["estimated_throughput_fps"]), k_o * float(o["estimated_throughput_fps"])
                fps = system_fps(r_t, r_o, forwarded_fraction, scheduler)
                if best is None or fps > best["system_fps"] + 1e-9:
                    best = {"system_fps": fps, "twin_design": int(t["design"]), "twin_replicas": k_t,
                            "original_design": int(o["design"]), "original_replicas": k_o,
                            "twin_fps": r_t, "original_fps": r_o,
                            "twin_latency_ms": float(t["estimated_latency_ms"]),
                            "original_latency_ms": float(o["estimated_latency_ms"]),
                            **{f"total_{r}": used[r] + k_o * float(o[r]) for r in RESOURCES}}
    return best


def system_rows(board: dict, twin: str, twin_designs: pd.DataFrame, original_designs: pd.DataFrame,
                points: pd.DataFrame, utilization: float, limits: dict, max_replicas: int = 8,
                switch_ms: float = 50.0, switch_batch: int = 1000) -> pd.DataFrame:
    """One row per operating point (plus the oracle) and scheduler: TwinDNN and the four baselines.

    Baselines: (a) ``original_alone``: the original's best whole-device design, replication
    allowed; (b) ``original_in_pair``: the original design that runs in the pair, alone (the
    paper's comparison: what the twin adds with resources the original leaves); (c)
    ``time_shared``: Big/Little with each network's best whole-device design in turn
    (``switch_ms`` per switch, ``switch_batch`` inputs per turn); (d) ``twin_alone``.
    ``points`` needs gate, target_kind, target_value, forwarded_fraction, twin_accuracy,
    original_accuracy, system_accuracy, accuracy_recovery. ``limits`` maps network -> limit text.
    """
    alone = best_alone(original_designs, board, utilization, max_replicas)
    twin_alone = best_alone(twin_designs, board, utilization, max_replicas)
    rows = []
    for _, p in points.iterrows():
        f = float(p["forwarded_fraction"])
        for scheduler in SCHEDULERS:
            pair = best_pair(twin_designs, original_designs, board, f, scheduler, utilization, max_replicas)
            row = {
                "board": board["name"], "twin": twin, "gate": p["gate"], "target_kind": p.get("target_kind", ""),
                "selection": p.get("selection", "point"),  # not the config: an operating point
                "target_value": p.get("target_value", np.nan),  # not the config: an operating point
                "scheduler": scheduler, "forwarded_fraction": f,
                "twin_accuracy": p["twin_accuracy"], "original_accuracy": p["original_accuracy"],
                "cascade_accuracy": p["system_accuracy"], "utilization_budget": utilization,
                "original_alone_fps": alone["fps"] if alone else np.nan,
                "original_alone_replicas": alone["replicas"] if alone else 0,
                "original_alone_limit": limits.get("original", ""),
                "twin_alone_fps": twin_alone["fps"] if twin_alone else np.nan,
                "twin_alone_limit": limits.get("twin", ""),
                "time_shared_fps": time_shared_fps(twin_alone["fps"], alone["fps"], f, switch_ms, switch_batch)
                if alone and twin_alone else np.nan,
                "fits": pair is not None, "source": SOURCE_ESTIMATE,
            }
            if pair is None:
                row["pair_limit"] = "does not fit: no twin and original designs fit together"
                row["twindnn_accuracy"] = np.nan
            else:
                r_t, r_o = pair["twin_fps"], pair["original_fps"]
                acc = system_accuracy(p["system_accuracy"], p["original_accuracy"], r_t, r_o, f, scheduler)
                row.update({
                    "twindnn_fps": pair["system_fps"], "twindnn_accuracy": acc,
                    "accuracy_recovery": accuracy_recovery(acc, p["twin_accuracy"], p["original_accuracy"]),
                    "original_direct_share": original_direct_share(r_t, r_o, f, scheduler),
                    "twin_fps": r_t, "original_fps": r_o, "original_in_pair_fps": r_o,
                    "twin_design": pair["twin_design"], "twin_replicas": pair["twin_replicas"],
                    "original_design": pair["original_design"], "original_replicas": pair["original_replicas"],
                    "twin_latency_ms": pair["twin_latency_ms"], "original_latency_ms": pair["original_latency_ms"],
                    **{k: v for k, v in pair.items() if k.startswith("total_")},
                })
                if "forwarded_fraction_ci95_low" in p:
                    row.update(_intervals(p, r_t, r_o, scheduler))
            for base in ("original_alone", "original_in_pair", "time_shared", "twin_alone"):
                denominator = row.get(f"{base}_fps", np.nan)
                for s in ("", *CI):
                    value = row.get(f"twindnn_fps{s}", np.nan)
                    row[f"gain_vs_{base}{s}"] = value / denominator if denominator else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


CI = ("_ci95_low", "_ci95_high")


def _intervals(p, r_t: float, r_o: float, scheduler: str) -> dict:
    """95 % intervals of a pair's forwarded share, TwinDNN throughput and accuracy and recovery,
    from the operating point's test intervals (:func:`twindnn.cascade.rescore_operating_points`):
    the throughput falls as the forwarded share grows, so its interval is the closed form at the
    share's interval ends; the accuracy interval is the scheduler's mix at the ends of the cascade
    accuracy's interval (the forwarded share held at its estimate)."""
    f, f_low, f_high = (float(p[f"forwarded_fraction{s}"]) for s in ("", *CI))
    a_low, a_high = (float(p[f"system_accuracy{s}"]) for s in CI)
    acc = [system_accuracy(a, p["original_accuracy"], r_t, r_o, f, scheduler) for a in (a_low, a_high)]
    return {
        "forwarded_fraction_ci95_low": f_low, "forwarded_fraction_ci95_high": f_high,
        "twindnn_fps_ci95_low": system_fps(r_t, r_o, f_high, scheduler),
        "twindnn_fps_ci95_high": system_fps(r_t, r_o, f_low, scheduler),
        "twindnn_accuracy_ci95_low": acc[0], "twindnn_accuracy_ci95_high": acc[1],
        "accuracy_recovery_ci95_low": accuracy_recovery(acc[0], p["twin_accuracy"], p["original_accuracy"]),
        "accuracy_recovery_ci95_high": accuracy_recovery(acc[1], p["twin_accuracy"], p["original_accuracy"]),
        "cascade_accuracy_ci95_low": a_low, "cascade_accuracy_ci95_high": a_high,
    }


def save_folding(folding: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(folding, indent=2))
    return path
