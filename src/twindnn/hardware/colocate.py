"""Folding search and co-location of the twin and the 8-bit original on one FPGA.

Each network's prepared dataflow model (:func:`twindnn.hardware.finn_build.prepare_network`)
is specialized for the board's part, then folded by FINN's ``SetFolding`` for a ladder of
target frame rates; for each rung FINN's analytical models give cycles per layer
(-> estimated FPS at the board clock) and LUT/DSP/BRAM_18K/URAM. Co-location sums the
two networks' resources (each network is built alone and the two are summed; finn-plus's
multi-DNN "Parallel" mode is not used), and a pair fits when every resource type stays
within ``utilization`` of the board's budget. ``DuplicateStreams`` and ``ElementwiseAdd``
have no analytical estimate in finn-plus 1.6.1 (they count 0); their number is reported.
``system_rows`` turns the best pairs into the per-operating-point system table.
"""

from __future__ import annotations

import copy
import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .finn_build import UNESTIMATED_OPS, prepare_finn
from .system_model import SOURCE_ESTIMATE, mean_latency_ms, system_fps

RESOURCES = ("LUT", "DSP", "BRAM_18K", "URAM")
FOLDING_ATTRS = ["PE", "SIMD", "parallel_window", "ram_style", "ram_style_thresholds", "resType",
                 "mem_mode", "runtime_writeable_weights"]


def specialize(dataflow_onnx, fpga_part: str):
    """Load a prepared dataflow model and specialize its layers (HLS/RTL) for ``fpga_part``."""
    prepare_finn(False)
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(dataflow_onnx))
    model = model.transform(SpecializeLayers(fpga_part))
    model = model.transform(GiveUniqueNodeNames())
    model = model.transform(InferShapes())
    model = model.transform(InferDataTypes())
    for t in (MinimizeWeightBitWidth(), MinimizeAccumulatorWidth(), InferDataTypes(), RoundAndClipThresholds(),
              InferDataTypes()):
        model = model.transform(t)
    return model


def evaluate_folding(model, fpga_part: str, clock_mhz: float, target_fps: float, mvau_wwidth_max: int):
    """Fold ``model`` for ``target_fps``; (folded model, summary dict of FPS/latency/resources)."""
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.set_folding import SetFolding

    cycles_target = max(1, int(clock_mhz * 1e6 / max(target_fps, 1e-9)))
    folded = copy.deepcopy(model).transform(SetFolding(cycles_target, mvau_wwidth_max=mvau_wwidth_max))
    return folded, summarize(folded, fpga_part, clock_mhz, target_fps)


def summarize(model, fpga_part: str, clock_mhz: float, target_fps: float | None = None) -> dict:
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation

    cycles = model.analysis(exp_cycles_per_layer)
    res = model.analysis(partial(res_estimation, fpgapart=fpga_part))
    max_cycles = max(cycles.values())
    row = {"target_fps": target_fps, "max_cycles": int(max_cycles),
           "estimated_throughput_fps": clock_mhz * 1e6 / max_cycles,
           # Dataflow latency: a frame passes every layer; the sum of layer cycles bounds it.
           "estimated_latency_ms": sum(cycles.values()) / (clock_mhz * 1e3),
           "unestimated_nodes": sum(1 for n in model.graph.node if n.op_type.split("_")[0] in UNESTIMATED_OPS)}
    for r in RESOURCES:
        row[r] = float(sum(float(v.get(r, 0.0)) for v in res.values()))
    return row


def folding_ladder(model, board: dict, start_fps: float, factor: float, max_points: int = 24, *,
                   mvau_wwidth_max: int, utilization: float) -> tuple[pd.DataFrame, list]:
    """Fold for geometrically rising target FPS until the design stops getting faster or outgrows the board.

    Returns (table with one row per distinct design, list of the folded models in that order).
    """
    rows, models, last_fps = [], [], -1.0
    target = start_fps
    for _ in range(max_points):
        folded, row = evaluate_folding(model, board["part"], board["clock_mhz"], target, mvau_wwidth_max)
        if row["estimated_throughput_fps"] > last_fps * 1.001:
            rows.append(row)
            models.append(folded)
            last_fps = row["estimated_throughput_fps"]
        elif row["estimated_throughput_fps"] <= last_fps * 1.001 and target > 4 * last_fps:
            break  # fully unfolded: faster targets change nothing
        if not fits(row, board, utilization):
            break
        target *= factor
    return pd.DataFrame(rows), models


def fits(row, board: dict, utilization: float) -> bool:
    """Whether a design's (or a sum of designs') resources fit ``utilization`` of the board's budget."""
    return all(float(row[r]) <= utilization * float(board["resources"].get(r, 0)) + 1e-9 for r in RESOURCES)


def folding_config(model) -> dict:
    """FINN folding config (``folding_config_file`` JSON) of a folded model."""
    from qonnx.custom_op.registry import getCustomOp

    cfg = {"Defaults": {}}
    for node in model.graph.node:
        inst = getCustomOp(node)
        attrs = {}
        for a in FOLDING_ATTRS:
            try:
                attrs[a] = inst.get_nodeattr(a)
            except (AttributeError, Exception):
                continue
        cfg[node.name] = attrs
    return cfg


# --------------------------------------------------------------------------- pair search


def best_pair(twin_designs: pd.DataFrame, original_designs: pd.DataFrame, board: dict,
              forwarded_fraction: float, mode: str, utilization: float) -> dict | None:
    """The twin and original foldings that maximise the system FPS while fitting the board together."""
    best = None
    for i, t in twin_designs.iterrows():
        for j, o in original_designs.iterrows():
            total = {r: float(t[r]) + float(o[r]) for r in RESOURCES}
            if not fits(total, board, utilization):
                continue
            fps = system_fps(t["estimated_throughput_fps"], o["estimated_throughput_fps"], forwarded_fraction, mode)
            if best is None or fps > best["system_fps"]:
                best = {"system_fps": fps, "twin_design": int(i), "original_design": int(j),
                        "twin_fps": float(t["estimated_throughput_fps"]),
                        "original_fps": float(o["estimated_throughput_fps"]),
                        "twin_latency_ms": float(t["estimated_latency_ms"]),
                        "original_latency_ms": float(o["estimated_latency_ms"]),
                        **{f"total_{r}": total[r] for r in RESOURCES}}
    return best


def best_single(designs: pd.DataFrame, board: dict, utilization: float) -> dict | None:
    """The fastest folding of one network that fits the board alone (the whole device)."""
    ok = designs[[fits(row, board, utilization) for _, row in designs.iterrows()]]
    if ok.empty:
        return None
    i = ok["estimated_throughput_fps"].idxmax()
    return {"design": int(i), **{k: (float(v) if isinstance(v, (int, float, np.number)) else v)
                                  for k, v in ok.loc[i].items()}}


def system_rows(board: dict, twin: str, twin_designs: pd.DataFrame, original_designs: pd.DataFrame,
                points: pd.DataFrame, utilization: float) -> pd.DataFrame:
    """One row per operating point (plus the oracle): accuracies, throughputs, gains, latency.

    ``points`` needs gate, target_kind, target_value, forwarded_fraction, twin_accuracy,
    original_accuracy, system_accuracy, accuracy_recovery.
    """
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


def save_folding(model, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(folding_config(model), indent=2))
    return path
