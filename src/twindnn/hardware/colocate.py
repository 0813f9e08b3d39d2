"""The twin + original pair on one FPGA, and the baselines beside it, from each network's searched
designs (:mod:`twindnn.hardware.search`), every system placed by the same optimizer
(:func:`twindnn.hardware.optimize.solve`) within the same budget.

Systems per operating point and scheduler (:func:`system_rows`):

- **TwinDNN**: the mix of twin and original designs (any number of instances of each, MACs on
  DSPs or LUTs as searched) that maximises the scheduler's throughput, with the dispatcher's
  stated cost;
- (a) ``original_alone``: the original's best mix of all its searched designs on the whole
  device (DSP and LUT MAC designs side by side): the strongest original-only system the
  optimizer finds; (a, DSP) ``original_dsp_alone``: the same from its DSP designs only (what a
  DSP-only flow builds); (b) ``original_in_pair``: the original instances of TwinDNN's pair,
  alone (the paper's comparison); (c) ``time_shared``: Big/Little, each network's best whole-device
  mix in turn, at the batch that meets a latency budget (:func:`time_shared_rows`), beside its
  batch-to-infinity bound; (d) ``twin_alone``.

Replicas sit behind one input stream; each instance pays ``per_instance`` (its splitter and
merger port, a stated cost) and the pair a dispatcher (``dispatcher``), both given in the config,
not estimated by FINN+.
"""

from __future__ import annotations

import json
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
    time_shared_at_latency,
    time_shared_bound_fps,
)
from .boards import RESOURCES
from .optimize import ALONE, counts_json, instance_resources, main_design, mix_text, recompute_resources, solve
from .search import budget

DSP_MACS = ("auto", "dsp")  # the MAC choices of a DSP-only flow (auto: FINN+'s RTL units on DSPs)
BASELINES = ("original_alone", "original_dsp_alone", "original_in_pair", "time_shared", "time_shared_bound",
             "twin_alone")


def dsp_designs(designs: pd.DataFrame) -> pd.DataFrame:
    """A network's designs whose MACs a DSP-only flow would place (``mac`` auto or dsp)."""
    return designs[designs["mac"].isin(DSP_MACS)] if "mac" in designs else designs


def _fitting(designs: pd.DataFrame, cap: dict) -> pd.DataFrame:
    """The designs of which one instance fits ``cap`` (the rest cannot be placed)."""
    ok = [all(instance_resources(d)[r] <= cap[r] + 1e-9 for r in RESOURCES) for _, d in designs.iterrows()]
    return designs[ok]


def best_alone(designs: pd.DataFrame, cap: dict, max_instances: int | None = None,
               per_instance: dict | None = None) -> dict | None:
    """The fastest whole-device use of one network: the optimizer's best mix of its designs."""
    pool = _fitting(designs, cap)
    if pool.empty:
        return None
    return solve({"n": pool}, cap, ALONE, max_instances=max_instances, per_instance=per_instance)


def best_pair(twin_designs: pd.DataFrame, original_designs: pd.DataFrame, cap: dict, forwarded_fraction: float,
              scheduler: str, max_instances: int | None = None, per_instance: dict | None = None,
              dispatcher: dict | None = None) -> dict | None:
    """The mix of twin and original designs that maximises the scheduler's throughput within ``cap``."""
    twin, original = _fitting(twin_designs, cap), _fitting(original_designs, cap)
    if twin.empty or original.empty:
        return None
    return solve({"twin": twin, "original": original}, cap, scheduler, forwarded_fraction,
                 max_instances=max_instances, per_instance=per_instance, fixed=dispatcher)


def _scaled(designs: pd.DataFrame, factors: dict) -> pd.DataFrame:
    """The designs with their estimates (and their skip FIFOs') scaled by ``factors``."""
    out = designs.copy()
    for r, k in factors.items():
        for column in (r, f"fifo_{r}"):
            if column in out:
                out[column] = out[column].astype(float) * float(k)
    return out


def _mix_columns(prefix: str, solution: dict | None, key: str, designs: pd.DataFrame) -> dict:
    if solution is None:
        return {f"{prefix}_fps": np.nan, f"{prefix}_replicas": 0, f"{prefix}_mix": "", f"{prefix}_counts": "{}",
                f"{prefix}_limit": "does not fit: no design of it fits the budget"}
    counts = solution["counts"][key]
    return {f"{prefix}_fps": solution["rates"][key] if key in solution["rates"] else solution["fps"],
            f"{prefix}_replicas": int(sum(counts.values())), f"{prefix}_mix": mix_text(counts, designs),
            f"{prefix}_counts": counts_json(counts), f"{prefix}_limit": solution["limit"]}


def _bound(designs: pd.DataFrame) -> float:
    return float(designs["resource_bound_fps"].iloc[0]) if "resource_bound_fps" in designs and len(designs) \
        else np.nan


def system_rows(board: dict, twin: str, twin_designs: pd.DataFrame, original_designs: pd.DataFrame,
                points: pd.DataFrame, utilization: float, max_replicas: int | None = None,
                per_instance: dict | None = None, dispatcher: dict | None = None,
                sensitivity: dict | None = None) -> pd.DataFrame:
    """One row per operating point (plus the oracle) and scheduler: TwinDNN and its baselines.

    ``points`` needs gate, target_kind, target_value, forwarded_fraction, twin_accuracy,
    original_accuracy, system_accuracy, accuracy_recovery. ``sensitivity`` ({resource: factor})
    scales the designs' estimates: does the chosen pair still fit, and what is the gain over (a)
    when both are placed again? The time-shared baseline is added by :func:`time_shared_rows`.
    """
    cap = budget(board, utilization)
    opts = {"max_instances": max_replicas, "per_instance": per_instance}
    alone = best_alone(original_designs, cap, **opts)
    alone_dsp = best_alone(dsp_designs(original_designs), cap, **opts)
    twin_alone = best_alone(twin_designs, cap, **opts)
    base = {
        "board": board["name"], "twin": twin, "utilization_budget": utilization, "source": SOURCE_ESTIMATE,
        **_mix_columns("original_alone", alone, "n", original_designs),
        **_mix_columns("original_dsp_alone", alone_dsp, "n", original_designs),
        **_mix_columns("twin_alone", twin_alone, "n", twin_designs),
        "original_bound_fps": _bound(original_designs), "twin_bound_fps": _bound(twin_designs),
    }
    base["original_alone_bound_share"] = base["original_alone_fps"] / base["original_bound_fps"]
    base["twin_alone_bound_share"] = base["twin_alone_fps"] / base["twin_bound_fps"]
    if sensitivity:
        s_twin, s_orig = _scaled(twin_designs, sensitivity), _scaled(original_designs, sensitivity)
        s_alone = best_alone(s_orig, cap, **opts)
    rows = []
    for _, p in points.iterrows():
        f = float(p["forwarded_fraction"])
        for scheduler in SCHEDULERS:
            pair = best_pair(twin_designs, original_designs, cap, f, scheduler, dispatcher=dispatcher, **opts)
            row = {
                **base, "gate": p["gate"], "target_kind": p.get("target_kind", ""),
                "selection": p.get("selection", "point"),  # not the config: an operating point
                "target_value": p.get("target_value", np.nan),  # not the config: an operating point
                "scheduler": scheduler, "forwarded_fraction": f,
                "twin_accuracy": p["twin_accuracy"], "original_accuracy": p["original_accuracy"],
                "cascade_accuracy": p["system_accuracy"],
                "time_shared_bound_fps": time_shared_bound_fps(twin_alone["fps"], alone["fps"], f)
                if alone and twin_alone else np.nan,
                "fits": pair is not None,
            }
            if pair is None:
                row["pair_limit"] = "does not fit: no twin and original designs fit together"
                row["twindnn_accuracy"] = np.nan
            else:
                r_t, r_o = pair["rates"]["twin"], pair["rates"]["original"]
                acc = system_accuracy(p["system_accuracy"], p["original_accuracy"], r_t, r_o, f, scheduler)
                t_counts, o_counts = pair["counts"]["twin"], pair["counts"]["original"]
                t_main, o_main = main_design(t_counts, twin_designs), main_design(o_counts, original_designs)
                row.update({
                    "twindnn_fps": pair["fps"], "twindnn_accuracy": acc,
                    "accuracy_recovery": accuracy_recovery(acc, p["twin_accuracy"], p["original_accuracy"]),
                    "original_direct_share": original_direct_share(r_t, r_o, f, scheduler),
                    "twin_fps": r_t, "original_fps": r_o, "original_in_pair_fps": r_o,
                    "twin_design": t_main, "twin_replicas": int(sum(t_counts.values())),
                    "original_design": o_main, "original_replicas": int(sum(o_counts.values())),
                    "twin_mix": mix_text(t_counts, twin_designs), "twin_counts": counts_json(t_counts),
                    "original_mix": mix_text(o_counts, original_designs), "original_counts": counts_json(o_counts),
                    "twin_latency_ms": _latency(t_counts, twin_designs),
                    "original_latency_ms": _latency(o_counts, original_designs),
                    "pair_limit": pair["limit"],
                    **{f"total_{r}": pair["resources"][r] for r in RESOURCES},
                })
                if "forwarded_fraction_ci95_low" in p:
                    row.update(_intervals(p, r_t, r_o, scheduler))
                if sensitivity:
                    row.update(_sensitivity(sensitivity, pair, s_twin, s_orig, s_alone, cap, f, scheduler,
                                            per_instance, dispatcher, opts))
            rows.append(row)
    return add_gains(pd.DataFrame(rows))


def _latency(counts: dict, designs: pd.DataFrame) -> float:
    """The slowest latency among a mix's designs (an input may meet any of them)."""
    by_id = designs.set_index(designs["design"].astype(int))
    return float(max(by_id.loc[int(d), "estimated_latency_ms"] for d in counts))


def _sensitivity(factors, pair, s_twin, s_orig, s_alone, cap, f, scheduler, per_instance, dispatcher, opts) -> dict:
    """The pair with every design's estimates scaled by ``factors``: does it still fit, and the gain
    over (a) when TwinDNN and the original alone are both placed again on the scaled estimates."""
    twin = recompute_resources(pair["counts"]["twin"], s_twin, per_instance)
    original = recompute_resources(pair["counts"]["original"], s_orig, per_instance)
    used = {r: twin[r] + original[r] + float((dispatcher or {}).get(r, 0.0)) for r in RESOURCES}
    again = best_pair(s_twin, s_orig, cap, f, scheduler, dispatcher=dispatcher, **opts)
    return {"sensitivity_factors": json.dumps(factors, sort_keys=True),
            "sensitivity_fits": all(used[r] <= cap[r] + 1e-9 for r in RESOURCES),
            "sensitivity_twindnn_fps": again["fps"] if again else np.nan,
            "sensitivity_original_alone_fps": s_alone["fps"] if s_alone else np.nan,
            "sensitivity_gain_vs_original_alone": again["fps"] / s_alone["fps"] if again and s_alone else np.nan}


def add_gains(rows: pd.DataFrame) -> pd.DataFrame:
    """``gain_vs_<baseline>`` (and its interval ends) of TwinDNN's throughput over each baseline."""
    rows = rows.copy()
    for base in BASELINES:
        denominator = rows[f"{base}_fps"] if f"{base}_fps" in rows else pd.Series(np.nan, index=rows.index)
        # the time-shared baselines move with the forwarded share too: no interval from TwinDNN's alone
        for s in (("",) if base.startswith("time_shared") else ("", *CI)):
            value = rows[f"twindnn_fps{s}"] if f"twindnn_fps{s}" in rows else pd.Series(np.nan, index=rows.index)
            rows[f"gain_vs_{base}{s}"] = value / denominator.where(denominator > 0)
    return rows


def time_shared_rows(system: pd.DataFrame, switch_ms: float, latency_budget_ms: float | None) -> pd.DataFrame:
    """Baseline (c) at the batch that meets a latency budget: ``latency_budget_ms``, or where it is
    None TwinDNN's simulated p99 latency at that operating point (the rows need the simulation's
    columns); then the gains again. Where not even a batch of one meets the budget (two switches
    alone take longer), (c) has no throughput at that latency (NaN, no gain) and
    ``time_shared_limit`` says why; its batch-to-infinity bound stays beside it."""
    out = system.copy()
    fps, batch, budget_ms, meets, limit = [], [], [], [], []
    for _, row in out.iterrows():
        cap = latency_budget_ms if latency_budget_ms is not None else row.get("simulated_p99_latency_ms", np.nan)
        if not (np.isfinite(row["twin_alone_fps"]) and np.isfinite(row["original_alone_fps"]) and np.isfinite(cap)):
            fps.append(np.nan), batch.append(np.nan), budget_ms.append(cap), meets.append(False)
            limit.append("no latency budget (no simulated TwinDNN latency)" if not np.isfinite(cap)
                         else "a network does not fit alone")
            continue
        got = time_shared_at_latency(row["twin_alone_fps"], row["original_alone_fps"], row["forwarded_fraction"],
                                     switch_ms, cap)
        fps.append(got["fps"] if got["meets"] else np.nan)
        batch.append(got["batch"] if got["meets"] else np.nan)
        budget_ms.append(cap), meets.append(got["meets"])
        limit.append(f"batch {got['batch']}: its two rounds take {got['latency_ms']:.1f} ms of the {cap:.1f} ms budget"
                     if got["meets"] else
                     f"no batch meets the {cap:.1f} ms budget: a batch of one takes {got['latency_ms']:.1f} ms "
                     f"(switches of {switch_ms:g} ms)")
    out["time_shared_fps"], out["time_shared_batch"] = fps, batch
    out["time_shared_latency_budget_ms"], out["time_shared_meets_latency"] = budget_ms, meets
    out["time_shared_limit"], out["time_shared_switch_ms"] = limit, switch_ms
    return add_gains(out)


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
