"""Design-space search on one FPGA: each network alone, and the twin + original pair.

Every design is evaluated by :class:`twindnn.hardware.estimate.EstimatePath`, the FINN+ estimate
build's own steps, so its figures are the build's. The space per network:

- **folding**: FINN's ``SetFolding`` for a ladder of target frame rates (``fps_start`` times
  ``fps_factor`` per rung) until the design outgrows the board or stops getting faster (fully
  unfolded), then bisection (``refine_steps``, in log space) between the last rung that fits and
  the first that does not. ``mvau_wwidth_max`` (SetFolding's SIMD cap) defaults to HLS's widest
  stream, so no folding heuristic limits a layer below what the device allows;
- **weight memory placement**: when a design's BRAM is over budget, the largest weight memories
  move to URAM (``ram_style="ultra"``, where the part has URAM) and then, where FINN+ models
  their LUT cost, to LUTRAM (``ram_style="distributed"``); the placed design is evaluated again.
  A design that fits alone but takes more than half the BRAM budget gets a second, placed
  variant with at most half of it (:data:`PAIR_BRAM_SHARE`), so that the pair search can put a
  partner beside it where BRAM would otherwise run out;
- **replication**: ``k`` instances of one design behind one input stream (``k`` times the rate
  and the resources; the stream splitter is not modelled).

``fits`` means every resource within ``utilization`` of the board's budget, everywhere. The
fastest fitting design of each network names what limits it: a resource the next faster
design exceeds, or "fully unfolded" (the slowest layer cannot go faster).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .estimate import RESOURCES, EstimatePath
from .system_model import (SCHEDULERS, SOURCE_ESTIMATE, original_direct_share, system_accuracy, system_fps,
                           time_shared_fps)

DESIGN_COLUMNS = ["network", "design", "target_fps", "placement", "estimated_throughput_fps", "estimated_latency_ms",
                  "max_cycles", "critical_path_cycles", "bottleneck_layer", *RESOURCES, "DSP_finn", "zero_estimated"]


def budget(board: dict, utilization: float) -> dict:
    return {r: utilization * float(board["resources"].get(r, 0)) for r in RESOURCES}


def fits(row, board: dict, utilization: float) -> bool:
    """Whether a design's (or a sum of designs') resources fit ``utilization`` of the board's budget."""
    cap = budget(board, utilization)
    return all(float(row[r]) <= cap[r] + 1e-9 for r in RESOURCES)


def over_budget(row, board: dict, utilization: float) -> str:
    """The resources over budget, e.g. ``BRAM_18K 612 > 530 (85% of 624)``; "" when it fits."""
    cap = budget(board, utilization)
    return "; ".join(f"{r} {float(row[r]):.0f} > {cap[r]:.0f} ({utilization:.0%} of {board['resources'].get(r, 0)})"
                     for r in RESOURCES if float(row[r]) > cap[r] + 1e-9)


# --------------------------------------------------------------------------- one network


def _weight_memories(path: EstimatePath, folding: dict, layers: list[dict]) -> list[dict]:
    """Weight memories that may move, largest BRAM first, with their projected cost elsewhere."""
    from qonnx.custom_op.registry import getCustomOp

    by_name = {n.name: n for n in path.specialized.graph.node}
    bram = {lay["layer"]: lay for lay in layers}
    out = []
    for name, attrs in folding.items():
        if name not in by_name or attrs.get("mem_mode") != "internal_decoupled" or "ram_style" not in attrs:
            continue
        if bram.get(name, {}).get("BRAM_18K", 0) <= 0:
            continue
        inst = getCustomOp(by_name[name])
        for a, v in attrs.items():
            inst.set_nodeattr(a, v)
        alternatives = {}
        for style in ("ultra", "distributed"):
            inst.set_nodeattr("ram_style", style)
            alternatives[style] = {r: float(inst.node_res_estimation(path.board["part"]).get(r, 0)) for r in RESOURCES}
        inst.set_nodeattr("ram_style", attrs["ram_style"])
        lut_modelled = not by_name[name].op_type.endswith("_rtl")  # FINN+ has no LUT model for RTL MVAUs
        out.append({"layer": name, **{r: bram[name][r] for r in RESOURCES}, "alternatives": alternatives,
                    "lut_modelled": lut_modelled})
    return sorted(out, key=lambda m: -m["BRAM_18K"])


PAIR_BRAM_SHARE = 0.5  # BRAM share of a design's placed variant for pairs


def place_memories(path: EstimatePath, folding: dict, design: dict, board: dict, utilization: float,
                   bram_share: float = 1.0):
    """(folding, design) with weight memories moved out of BRAM until the design's BRAM is within
    ``bram_share`` of the BRAM budget, or None if nothing moved."""
    cap = budget(board, utilization)
    cap["BRAM_18K"] *= bram_share
    if design["BRAM_18K"] <= cap["BRAM_18K"]:
        return None
    totals = {r: design[r] for r in RESOURCES}
    placed = json.loads(json.dumps(folding))
    moved = []
    for mem in _weight_memories(path, folding, design["layers"]):
        if totals["BRAM_18K"] <= cap["BRAM_18K"]:
            break
        for style in ("ultra", "distributed"):
            alt = mem["alternatives"][style]
            if style == "ultra" and cap["URAM"] <= 0:
                continue
            if style == "distributed" and not mem["lut_modelled"]:
                continue  # its LUT cost would count 0: not a placement we can vouch for
            # projected with FINN+'s per-layer models; the placed design is then evaluated for real
            after = {r: totals[r] - mem[r] + alt[r] if r != "DSP" else totals[r] for r in RESOURCES}
            if after["URAM"] <= cap["URAM"] and after["LUT"] <= cap["LUT"]:
                placed[mem["layer"]]["ram_style"] = style
                if style == "ultra":
                    placed[mem["layer"]]["runtime_writeable_weights"] = 1  # FINN requires it for URAM weights
                totals = after
                moved.append(style)
                break
    if not moved:
        return None
    label = ", ".join(f"{moved.count(s)} to {'URAM' if s == 'ultra' else 'LUTRAM'}" for s in ("ultra", "distributed")
                      if s in moved)
    return placed, {**path.evaluate(placed), "placement": f"weights: {label}"}


def search_network(path: EstimatePath, network: str, board: dict, utilization: float, fps_start: float,
                   fps_factor: float, mvau_wwidth_max: int | None, refine_steps: int = 5, max_rungs: int = 40,
                   log=None) -> tuple[pd.DataFrame, list[dict], str]:
    """Designs of one network on one board: (table with DESIGN_COLUMNS, their foldings, the limit of
    the fastest fitting one)."""
    rows, foldings = [], []

    def add(target, folding, design):
        rows.append({"network": network, "design": len(rows), "target_fps": target,
                     "placement": design.get("placement", "weights: BRAM (FINN default)"),
                     **{k: design[k] for k in DESIGN_COLUMNS if k in design and k not in ("network", "design")}})
        foldings.append(folding)
        return rows[-1]

    def evaluate(target):
        folding = path.fold(target, mvau_wwidth_max)
        design = path.evaluate(folding)
        best = add(target, folding, design)
        if not fits(best, board, utilization):
            placed = place_memories(path, folding, design, board, utilization)
            if placed is not None:
                best = add(target, *placed)
        else:  # fits alone: a variant with BRAM left for a partner (a row of its own, for the pair search)
            placed = place_memories(path, folding, design, board, utilization, PAIR_BRAM_SHARE)
            if placed is not None:
                add(target, placed[0], {**placed[1], "placement": f"{placed[1]['placement']} (BRAM for a pair)"})
        if log:
            print(f"{board['name']} {network}: target {target:,.0f} FPS -> {best['estimated_throughput_fps']:,.0f} "
                  f"FPS, {', '.join(f'{r} {best[r]:.0f}' for r in RESOURCES)} ({best['placement']})"
                  + ("" if fits(best, board, utilization) else " over budget"), file=log, flush=True)
        return best

    target, last_fit, first_fail, previous, unfolded = fps_start, None, None, None, False
    for _ in range(max_rungs):
        best = evaluate(target)
        if not fits(best, board, utilization):
            first_fail = (target, best)
            break
        if previous is not None and best["max_cycles"] >= previous["max_cycles"] and \
                target > 4 * best["estimated_throughput_fps"]:
            unfolded = True  # faster targets change nothing: every layer as parallel as FINN makes it
            break
        last_fit, previous = (target, best), best
        target *= fps_factor
    if last_fit is not None and first_fail is not None:
        lo, hi = last_fit[0], first_fail[0]
        for _ in range(refine_steps):
            mid = math.sqrt(lo * hi)
            best = evaluate(mid)
            if fits(best, board, utilization):
                lo, last_fit = mid, (mid, best)
            else:
                hi, first_fail = mid, (mid, best)
    designs = pd.DataFrame(rows, columns=DESIGN_COLUMNS)
    if last_fit is None:
        limit = f"does not fit: even the slowest folding needs {over_budget(first_fail[1], board, utilization)}"
    elif unfolded:
        limit = (f"fully unfolded (slowest layer {last_fit[1]['bottleneck_layer']}: "
                 f"{last_fit[1]['max_cycles']} cycles)")
    elif first_fail is not None:
        limit = f"resources: the next faster design needs {over_budget(first_fail[1], board, utilization)}"
    else:
        limit = f"search stopped after {max_rungs} rungs (raise hardware.fps_start)"
    return designs, foldings, limit


# --------------------------------------------------------------------------- replication and pairs


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
    from ..cascade import accuracy_recovery

    alone = best_alone(original_designs, board, utilization, max_replicas)
    twin_alone = best_alone(twin_designs, board, utilization, max_replicas)
    rows = []
    for _, p in points.iterrows():
        f = float(p["forwarded_fraction"])
        for scheduler in SCHEDULERS:
            pair = best_pair(twin_designs, original_designs, board, f, scheduler, utilization, max_replicas)
            row = {
                "board": board["name"], "twin": twin, "gate": p["gate"], "target_kind": p.get("target_kind", ""),
                "target_value": p.get("target_value", np.nan), "scheduler": scheduler, "forwarded_fraction": f,
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
            for base in ("original_alone", "original_in_pair", "time_shared", "twin_alone"):
                denominator = row.get(f"{base}_fps", np.nan)
                row[f"gain_vs_{base}"] = row.get("twindnn_fps", np.nan) / denominator if denominator else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def save_folding(folding: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(folding, indent=2))
    return path
