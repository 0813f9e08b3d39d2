"""Design-space search of one network on one FPGA: its foldings, weight placements and limits.

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
  partner beside it where BRAM would otherwise run out.

``fits`` means every resource within ``utilization`` of the board's budget, everywhere. The
fastest fitting design of each network names what limits it: a resource the next faster
design exceeds, or "fully unfolded" (the slowest layer cannot go faster).
"""

from __future__ import annotations

import json
import math

import pandas as pd
from qonnx.custom_op.registry import getCustomOp

from .boards import RESOURCES
from .estimate import EstimatePath

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
