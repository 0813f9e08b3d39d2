"""The physical limit of a network on a board: the most frames per second its MACs could run at if
every DSP lane and every LUT of the budget did nothing but multiply-accumulate.

Per matrix unit ``l`` (``MVAU``/``VVAU``) of the specialized graph: ``M_l`` MACs per frame
(FINN's ``get_op_and_param_counts``), the LUTs of one MAC lane and the DSPs of one lane. A lane's
LUTs come from FINN's own LUT model of the HLS unit with ``resType="lut"`` (the increase of
``lut_estimation`` from SIMD 1 to 841 at PE 1, per added lane: the multiplier and adder-tree
terms of the FINN-R model, without its integer rounding); a lane's DSPs from the RTL unit's
packing (:func:`twindnn.hardware.estimate.rtl_lanes`, lanes per DSP48 as ``mvu.sv`` packs them;
3 per DSP58) where FINN+ maps the unit to RTL, else FINN's HLS DSP model with ``resType="dsp"``. The bound is the linear program

    max R  s.t.  R = u_l + v_l,  sum_l M_l u_l dsp_l <= DSP * clock,  sum_l M_l v_l lut_l <= LUT * clock

(``u_l``, ``v_l``: the rate of layer ``l``'s MACs on DSPs and on LUTs), solved with SciPy's
``linprog``. It leaves out every other cost (memories, thresholds, the rest of the dataflow), so
no design can beat it (``tests/test_hardware_search.py``); the share a design reaches says how
close to the device's arithmetic limit the search got.
"""

from __future__ import annotations

import copy

import numpy as np
from qonnx.custom_op.registry import getCustomOp
from scipy.optimize import linprog

from .estimate import rtl_lanes
from .finn_env import MATRIX_UNITS

_LANE_PROBE = 840  # lanes added to measure the LUTs of one (FINN's int() rounding spread over many)


def layer_costs(specialized, fpga_part: str) -> list[dict]:
    """One row per matrix unit of a specialized graph: MACs per frame, LUTs and DSPs per MAC lane."""
    from finn.util.basic import get_dsp_block  # deferred: FINN+ is set up by EstimatePath first

    block = get_dsp_block(fpga_part)
    rows = []
    for node in specialized.graph.node:
        if node.op_type.split("_")[0] not in MATRIX_UNITS:
            continue
        inst = getCustomOp(copy.deepcopy(node))
        macs = float(sum(v for k, v in inst.get_op_and_param_counts().items() if k.startswith("op_mac")))
        w_bits, a_bits = inst.get_input_datatype(1).bitwidth(), inst.get_input_datatype(0).bitwidth()
        row = {"layer": node.name, "op_type": node.op_type, "macs": macs, "weight_bits": w_bits, "act_bits": a_bits}
        if node.op_type.endswith("_rtl"):
            # lanes pack along PE on DSP48 (mvu.sv), 3 along SIMD on a DSP58 (narrow weights: the most lanes)
            row["dsp_per_lane"] = 1 / 3 if block == "DSP58" else 1 / rtl_lanes(w_bits, a_bits, True, block)
            row["lut_per_lane"] = np.nan
        else:
            for attr, value in (("PE", 1), ("mem_mode", "internal_decoupled"), ("ram_style", "block")):
                if attr in inst.get_nodeattr_types():
                    inst.set_nodeattr(attr, value)
            # the increase over _LANE_PROBE more lanes, so that FINN's int() rounding does not count
            inst.set_nodeattr("resType", "lut")
            inst.set_nodeattr("SIMD", 1)
            one = inst.lut_estimation(fpga_part)
            inst.set_nodeattr("SIMD", 1 + _LANE_PROBE)
            row["lut_per_lane"] = float(inst.lut_estimation(fpga_part) - one) / _LANE_PROBE
            inst.set_nodeattr("resType", "dsp")
            wide = inst.dsp_estimation(fpga_part)
            inst.set_nodeattr("SIMD", 1)
            # FINN's HLS VVAU DSP model ignores SIMD: no per-lane figure, the layer stays off DSPs here
            row["dsp_per_lane"] = float(wide - inst.dsp_estimation(fpga_part)) / _LANE_PROBE
        rows.append(row)
    return rows


def merge_costs(*tables: list[dict]) -> list[dict]:
    """Per layer (matched by position: specializations keep the graph's order), the cheapest lane
    of each resource over the graphs of a network's MAC choices."""
    lengths = {len(t) for t in tables}
    if len(lengths) != 1:
        raise ValueError(f"the specialized graphs have different numbers of matrix units: {sorted(lengths)}")
    out = []
    for rows in zip(*tables):
        merged = dict(rows[0])
        for key in ("lut_per_lane", "dsp_per_lane"):
            values = [r[key] for r in rows if np.isfinite(r[key]) and r[key] > 0]
            merged[key] = min(values) if values else np.nan
        out.append(merged)
    return out


def resource_bound(costs: list[dict], budget: dict, clock_mhz: float) -> dict:
    """The arithmetic limit (FPS) of a network within ``budget``: on DSPs alone, on LUTs alone, and both."""
    clock = float(clock_mhz) * 1e6
    macs = np.array([c["macs"] for c in costs], dtype=np.float64)
    if not len(macs) or macs.sum() <= 0:
        raise ValueError("the graph has no matrix units: no MAC bound")
    dsp = np.array([c["dsp_per_lane"] for c in costs], dtype=np.float64)
    lut = np.array([c["lut_per_lane"] for c in costs], dtype=np.float64)
    dsp_cap, lut_cap = float(budget["DSP"]) * clock, float(budget["LUT"]) * clock
    total = float(macs.sum())
    alone = {
        "bound_dsp_fps": dsp_cap / float(np.sum(macs * dsp)) if np.all(np.isfinite(dsp)) and dsp_cap > 0 else 0.0,
        "bound_lut_fps": lut_cap / float(np.sum(macs * lut)) if np.all(np.isfinite(lut)) and lut_cap > 0 else 0.0,
    }
    # variables: R, u_1..u_L (rate on DSPs), v_1..v_L (rate on LUTs)
    n = len(macs)
    c = np.zeros(1 + 2 * n)
    c[0] = -1.0
    a_eq = np.zeros((n, 1 + 2 * n))
    for i in range(n):
        a_eq[i, 0], a_eq[i, 1 + i], a_eq[i, 1 + n + i] = 1.0, -1.0, -1.0
    a_ub = np.zeros((2, 1 + 2 * n))
    a_ub[0, 1:1 + n] = macs / total * np.nan_to_num(dsp, nan=0.0)  # scaled: HiGHS misreads raw MAC counts
    a_ub[1, 1 + n:] = macs / total * np.nan_to_num(lut, nan=0.0)
    bounds = [(0, None)] + [(0, None) if np.isfinite(d) else (0, 0) for d in dsp] + \
        [(0, None) if np.isfinite(v) else (0, 0) for v in lut]
    res = linprog(c, A_ub=a_ub, b_ub=[dsp_cap / total, lut_cap / total], A_eq=a_eq, b_eq=np.zeros(n), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"the resource-bound LP failed: {res.message}")
    return {"bound_fps": float(res.x[0]), **alone, "macs_per_frame": float(macs.sum())}
