"""Design-space search of one network on one FPGA: its foldings, memory placements and limits.

Every design is evaluated by :class:`twindnn.hardware.estimate.EstimatePath`, the FINN+ estimate
build's own steps, so its figures are the build's. The space per network:

- **folding**: FINN's ``SetFolding`` for a ladder of target frame rates (``fps_start`` times
  ``fps_factor`` per rung). The ladder goes on past rungs that do not fit (memory packing is not
  monotone in the folding) until faster targets change nothing (``SetFolding`` misses the target
  and ``max_cycles`` stops falling: FINN parallelises no further), keeping every evaluated design
  as a row; then bisection (``refine_steps``, in log space) between the fastest fitting design
  and the next faster one. ``mvau_wwidth_max`` (SetFolding's SIMD cap) defaults to HLS's widest
  stream. Each SetFolding result is tuned, and the tuned folding evaluated (column
  ``folding_changes`` says what changed and why):

  - **weight streams over 8191 bits** (``stream_cap``): SetFolding reverts the PE of an
    ``internal_decoupled`` HLS matrix unit whose weight stream ``PE * SIMD * weight bits`` would
    exceed ``AP_INT_MAX_W`` (8191), whatever the target needs. Such layers are folded again by
    SetFolding with ``mem_mode="internal_embedded"`` (weights in the HLS kernel, no weight
    stream, supported by ``MVAU_hls`` only; the RTL unit has no such cap), so their PE reaches
    the target. FINN+ estimates the embedded weights as LUTs up to 128 words per lane (as BRAM
    and URAM beyond: see :mod:`twindnn.hardware.estimate`);
  - **DSP lanes of RTL matrix units** (``dsp_pairing``): an ``MVAU_rtl`` packs
    :func:`~twindnn.hardware.estimate.rtl_lanes` products per DSP48 along PE (2 for 8-bit x
    8-bit), but SetFolding raises SIMD first and leaves PE at 1, one product per DSP. Each such
    unit gets the PE x SIMD (``MH % PE == 0``, ``MW % SIMD == 0``, SIMD within
    ``mvau_wwidth_max``) with the fewest DSPs at the same or fewer cycles. (``VVAU_rtl`` exists
    on Versal only, where its input generator shares its PE; it is left as SetFolding folds it.)

- **memory placement**, when a design is over budget, projected with FINN+'s per-node resource
  models and then evaluated for real (column ``placement``):

  - *weights* (BRAM over budget): the largest weight memories move to URAM (``ram_style="ultra"``,
    where the part has URAM) and then, where FINN+ models their LUT cost, to LUTRAM
    (``ram_style="distributed"``);
  - *thresholds* (LUT over budget; ``threshold_placement``): ``Thresholding_rtl`` keeps its
    thresholds (255 per channel at 8-bit activations) in LUTRAM when its depth triggers are 0.
    Their deepest stages move to BRAM, then to URAM (with ``runtime_writeable_weights``, as
    URAM cannot be initialised from the bitstream), through ``depth_trigger_bram`` /
    ``depth_trigger_uram``, the memories that free the most LUTs per share of the block budget
    first. (With standalone thresholds, as every build here, matrix units hold none.)

  A design that fits alone but takes more than half the BRAM budget gets a second, placed
  variant with at most half of it (:data:`PAIR_BRAM_SHARE`), so that the pair search can put a
  partner beside it where BRAM would otherwise run out.

``fits`` means every resource within ``utilization`` of the board's budget, everywhere. The
fastest fitting design of each network names what limits it (:func:`search_network`): a
resource the next faster design exceeds; a layer held back by a cap (named, with the cause);
or "fully unfolded", only when every slowest layer of the design is at its maximum parallelism.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
from finn.transformation.fpgadataflow.set_folding import divisors
from finn.util.basic import MAX_ALLOWED_AP_INT_W
from qonnx.custom_op.registry import getCustomOp

from .boards import RESOURCES
from .estimate import NO_TRIGGER, EstimatePath, rtl_dsp_block, rtl_mvu_dsps, rtl_operands
from .optimize import instance_resources

DESIGN_COLUMNS = ["network", "design", "target_fps", "placement", "estimated_throughput_fps", "estimated_latency_ms",
                  "max_cycles", "critical_path_cycles", "bottleneck_layer", *RESOURCES, "DSP_finn", "zero_estimated",
                  "bottleneck_cycles", "folding_changes", *(f"fifo_{r}" for r in RESOURCES), "fifos",
                  "fifo_depth_max"]
DEFAULT_PLACEMENT = "weights: BRAM (FINN default)"


def budget(board: dict, utilization: float) -> dict:
    return {r: utilization * float(board["resources"].get(r, 0)) for r in RESOURCES}


def fits(row, board: dict, utilization: float) -> bool:
    """Whether a design's (or a sum of designs') resources, its estimated skip FIFOs included
    (:func:`twindnn.hardware.optimize.instance_resources`), fit ``utilization`` of the board's budget."""
    cap = budget(board, utilization)
    need = instance_resources(row)
    return all(need[r] <= cap[r] + 1e-9 for r in RESOURCES)


def over_budget(row, board: dict, utilization: float) -> str:
    """The resources over budget, e.g. ``BRAM_18K 612 > 530 (85% of 624)``; "" when it fits."""
    cap = budget(board, utilization)
    need = instance_resources(row)
    return "; ".join(f"{r} {need[r]:.0f} > {cap[r]:.0f} ({utilization:.0%} of {board['resources'].get(r, 0)})"
                     for r in RESOURCES if need[r] > cap[r] + 1e-9)


def _op(node, attrs: dict | None = None):
    """FINN's custom op of a copy of ``node`` with ``attrs`` set (the graph is left as it is)."""
    inst = getCustomOp(copy.deepcopy(node))
    types = inst.get_nodeattr_types()
    for a, v in (attrs or {}).items():
        if a in types:
            inst.set_nodeattr(a, v)
    return inst


def _res(inst, part: str) -> dict:
    est = inst.node_res_estimation(part)
    return {r: float(est.get(r, 0)) for r in RESOURCES}


# --------------------------------------------------------------------------- folding: caps and DSP lanes


def _capped_pe_step(inst) -> tuple[int, int] | None:
    """(next PE, its weight stream width) where SetFolding's next PE step of an ``MVAU_hls`` would
    pass the 8191-bit weight stream it allows (``internal_decoupled``), else None."""
    pe, simd, mh = (inst.get_nodeattr(a) for a in ("PE", "SIMD", "MH"))
    if pe >= mh:
        return None
    nxt = next(d for d in divisors(mh) if d > pe)
    width = nxt * simd * inst.get_input_datatype(1).bitwidth()
    return (nxt, width) if width > MAX_ALLOWED_AP_INT_W else None


def stream_capped(path: EstimatePath, folding: dict, target_fps: float) -> dict[str, str]:
    """The layers ``SetFolding`` held below ``target_fps`` by the 8191-bit weight stream of
    ``internal_decoupled`` HLS matrix units ({layer: why}), as SetFolding checks it."""
    target = path.target_cycles(target_fps)
    out = {}
    for node in path.specialized.graph.node:
        attrs = folding.get(node.name, {})
        if node.op_type != "MVAU_hls" or attrs.get("mem_mode") != "internal_decoupled":
            continue
        inst = _op(node, attrs)
        if inst.get_exp_cycles() <= target:
            continue
        step = _capped_pe_step(inst)
        if step is not None:
            out[node.name] = f"weight stream {step[1]} > {MAX_ALLOWED_AP_INT_W} bits at PE {step[0]}"
    return out


def pair_dsp_lanes(path: EstimatePath, folding: dict, mvau_wwidth_max: int | None = None) -> tuple[dict, list[str]]:
    """``folding`` with each ``MVAU_rtl`` at the PE x SIMD that needs the fewest DSPs (lanes per
    DSP as the RTL packs them) at the same or fewer cycles, and what changed."""
    block = rtl_dsp_block(path.board["part"])
    if block is None:
        return folding, []
    model = path.minimized(folding)  # the bit widths the RTL is generated with
    out, changes = json.loads(json.dumps(folding)), []
    for node in model.graph.node:
        if node.op_type != "MVAU_rtl":
            continue
        inst = getCustomOp(node)
        pe, simd, mh, mw = (inst.get_nodeattr(a) for a in ("PE", "SIMD", "MH", "MW"))
        wbits, abits, narrow = rtl_operands(model, node)
        dsps = rtl_mvu_dsps(pe, simd, wbits, abits, narrow, block)
        best = None
        for p in divisors(mh):
            for s in divisors(mw):
                if p * s < pe * simd or (s > simd and mvau_wwidth_max and s * wbits > mvau_wwidth_max):
                    continue  # slower, or SIMD over the configured cap
                d = rtl_mvu_dsps(p, s, wbits, abits, narrow, block)
                key = (d, p * s, p)  # fewest DSPs, then the least parallel, then the smallest PE
                if d < dsps and (best is None or key < best[0]):
                    best = (key, p, s)
        if best is not None:
            _, p, s = best
            out[node.name].update(PE=p, SIMD=s)
            changes.append(f"{node.name} PE {pe}->{p} SIMD {simd}->{s} ({dsps}->{best[0][0]} DSP)")
    return out, changes


def tuned_folding(path: EstimatePath, target_fps: float, mvau_wwidth_max: int | None, stream_cap: bool = True,
                  dsp_pairing: bool = True) -> tuple[dict, str]:
    """SetFolding's folding for ``target_fps`` with the search's tuning (module docstring), and
    what the tuning changed ("" for none)."""
    folding = path.fold(target_fps, mvau_wwidth_max)
    notes = []
    if stream_cap:
        capped = {}
        while True:  # a layer freed of the cap can leave another one as the next held back
            more = {k: v for k, v in stream_capped(path, folding, target_fps).items() if k not in capped}
            if not more:
                break
            capped.update(more)
            folding = path.fold(target_fps, mvau_wwidth_max, embedded=set(capped))
        if capped:
            notes.append("internal_embedded (SetFolding reverts PE at a weight stream over 8191 bits): " + "; ".join(
                f"{name} {why}, now PE {folding[name]['PE']}" for name, why in capped.items()))
    if dsp_pairing:
        folding, paired = pair_dsp_lanes(path, folding, mvau_wwidth_max)
        if paired:
            notes.append("DSP lanes paired: " + "; ".join(paired))
    return folding, " | ".join(notes)


def _max_parallel(inst, op_type: str) -> dict | None:
    """A node's folding attributes at the most parallelism FINN offers it (None: not folded)."""
    a = inst.get_nodeattr
    if op_type.startswith("MVAU"):
        return {"PE": a("MH"), "SIMD": a("MW")}
    if op_type.startswith("VVAU"):
        return {"PE": a("Channels"), "SIMD": int(np.prod(a("Kernel")))}
    if op_type.startswith("ConvolutionInputGenerator"):
        return {"SIMD": a("IFMChannels"), **({"parallel_window": 1} if op_type.endswith("_rtl") else {})}
    if op_type in ("StreamingConcat_hls", "StreamingSplit_hls"):
        return {"SIMD": int(np.gcd.reduce(list(a("ChannelsPerStream"))))}
    if op_type == "LabelSelect_hls":
        return {"PE": a("Labels")}
    types = inst.get_nodeattr_types()
    for attr, shape in (("PE", inst.get_normal_output_shape), ("SIMD", inst.get_normal_input_shape)):
        if attr in types:
            return {attr: int(a("NumChannels")) if "NumChannels" in types else int(shape()[-1])}
    return None


def _held_back_by(inst, op_type: str, attrs: dict, top: dict, mvau_wwidth_max: int | None) -> str:
    """Why SetFolding left a node below its maximum parallelism ``top``."""
    if op_type.startswith("MVAU"):
        simd, mw = inst.get_nodeattr("SIMD"), inst.get_nodeattr("MW")
        wbits = inst.get_input_datatype(1).bitwidth()
        step = _capped_pe_step(inst) if op_type == "MVAU_hls" and attrs.get("mem_mode") == "internal_decoupled" \
            else None
        if step is not None:
            return (f"weight stream {step[1]} > {MAX_ALLOWED_AP_INT_W} bits at PE {step[0]}: SetFolding "
                    "reverts PE of internal_decoupled HLS units")
        if simd < mw:
            nxt = next(d for d in divisors(mw) if d > simd)
            if nxt * wbits > int(mvau_wwidth_max or 2**31 - 1):
                return f"SIMD {nxt} x {wbits} weight bits > mvau_wwidth_max {mvau_wwidth_max}"
    now = ", ".join(f"{k} {inst.get_nodeattr(k)}" for k in top)
    return f"SetFolding stops at {now} (maximum {', '.join(f'{k} {v}' for k, v in top.items())})"


def slowest_layers(path: EstimatePath, folding: dict, design: dict, mvau_wwidth_max: int | None = None) -> list[dict]:
    """The design's slowest layers: their cycles, the cycles at their maximum parallelism, and
    (where that is faster) why FINN leaves them slower."""
    by_name = {n.name: n for n in path.specialized.graph.node}
    slowest = max((lay["cycles"] for lay in design["layers"]), default=0)
    out = []
    for lay in design["layers"]:
        if lay["cycles"] != slowest:
            continue
        row = {"layer": lay["layer"], "op_type": lay["op_type"], "cycles": lay["cycles"], "fastest": lay["cycles"],
               "cause": ""}
        node = by_name.get(lay["layer"])
        if node is not None:
            attrs = folding.get(node.name, {})
            inst = _op(node, attrs)
            top = _max_parallel(inst, node.op_type)
            if top is not None:
                try:
                    row["fastest"] = min(lay["cycles"], int(_op(node, {**attrs, **top}).get_exp_cycles()))
                except Exception:  # noqa: BLE001 - a configuration FINN cannot model: no faster one known
                    row["fastest"] = lay["cycles"]
                if row["fastest"] < lay["cycles"]:
                    row["cause"] = _held_back_by(inst, node.op_type, attrs, top, mvau_wwidth_max)
        out.append(row)
    return out


# --------------------------------------------------------------------------- memory placement


def _weight_memories(path: EstimatePath, folding: dict, layers: list[dict]) -> list[dict]:
    """Weight memories that may move, largest BRAM first, with their projected cost elsewhere."""
    model = path.minimized(folding)
    by_name = {n.name: n for n in model.graph.node}
    bram = {lay["layer"]: lay for lay in layers}
    out = []
    for name, attrs in folding.items():
        if name not in by_name or attrs.get("mem_mode") != "internal_decoupled" or "ram_style" not in attrs:
            continue
        if bram.get(name, {}).get("BRAM_18K", 0) <= 0:
            continue
        alternatives = {style: _res(_op(by_name[name], {**attrs, "ram_style": style}), path.board["part"])
                        for style in ("ultra", "distributed")}
        lut_modelled = not by_name[name].op_type.endswith("_rtl")  # FINN+ has no LUT model for RTL MVAUs
        out.append({"layer": name, **{r: bram[name][r] for r in RESOURCES}, "alternatives": alternatives,
                    "lut_modelled": lut_modelled})
    return sorted(out, key=lambda m: -m["BRAM_18K"])


PAIR_BRAM_SHARE = 0.5  # BRAM share of a design's placed variant for pairs


def _moved(totals: dict, before: dict, after: dict) -> dict:
    """A design's projected totals with one memory's cost ``before`` replaced by ``after`` (DSPs unchanged)."""
    return {r: totals[r] - before[r] + after[r] if r != "DSP" else totals[r] for r in RESOURCES}


def _place_weights(path, folding, design, totals, cap):
    """(placed folding, projected totals, "weights: ..." or "") with weight memories moved out of
    BRAM until ``totals`` are within ``cap['BRAM_18K']``."""
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
            after = _moved(totals, mem, alt)
            if after["URAM"] <= cap["URAM"] and after["LUT"] <= cap["LUT"]:
                placed[mem["layer"]]["ram_style"] = style
                if style == "ultra":
                    placed[mem["layer"]]["runtime_writeable_weights"] = 1  # FINN requires it for URAM weights
                totals = after
                moved.append(style)
                break
    label = ", ".join(f"{moved.count(s)} to {'URAM' if s == 'ultra' else 'LUTRAM'}" for s in ("ultra", "distributed")
                      if s in moved)
    return placed, totals, f"weights: {label}" if moved else ""


def place_memories(path: EstimatePath, folding: dict, design: dict, board: dict, utilization: float,
                   bram_share: float = 1.0):
    """(folding, design) with weight memories moved out of BRAM until the design's BRAM is within
    ``bram_share`` of the BRAM budget, or None if nothing moved."""
    cap = budget(board, utilization)
    cap["BRAM_18K"] *= bram_share
    if design["BRAM_18K"] <= cap["BRAM_18K"]:
        return None
    placed, _, label = _place_weights(path, folding, design, {r: design[r] for r in RESOURCES}, cap)
    if not label:
        return None
    return placed, {**path.evaluate(placed), "placement": label}


_THRESHOLD_KINDS = {"BRAM": "BRAM_18K", "URAM": "URAM"}


def _threshold_memories(path: EstimatePath, folding: dict, kind: str) -> list[dict]:
    """Threshold memories of ``Thresholding_rtl`` nodes in LUTRAM (depth triggers 0): their cost
    now and, per depth trigger ``d`` (the stages of depth >= d move), in ``kind`` (BRAM or URAM)."""
    lutram = [name for name, attrs in folding.items() if name.startswith("Thresholding_rtl")
              and not attrs.get("depth_trigger_bram") and not attrs.get("depth_trigger_uram")]
    model = path.minimized(folding)  # the threshold widths the estimate sees
    moved = model
    if kind == "URAM":  # runtime-writeable thresholds keep the width FINN gives them before minimizing
        probe = json.loads(json.dumps(folding))
        for name in lutram:
            probe[name]["runtime_writeable_weights"] = 1
        moved = path.minimized(probe)
    part = path.board["part"]
    there = {n.name: n for n in moved.graph.node}
    out = []
    for node in model.graph.node:
        if node.name not in lutram:
            continue
        attrs = folding[node.name]
        inst = _op(node, attrs)
        now = _res(inst, part)
        if now["LUT"] <= 0:
            continue
        options = []
        for d in sorted({int(d) for _, d in inst.get_pe_mem_geometries()}, reverse=True):  # deepest stages first
            trig = {"depth_trigger_bram": d, "depth_trigger_uram": NO_TRIGGER if kind == "BRAM" else d}
            if kind == "URAM":
                trig["runtime_writeable_weights"] = 1  # URAM is not initialised by the bitstream
            options.append((trig, _res(_op(there[node.name], {**attrs, **trig}), part)))
        out.append({"layer": node.name, "now": now, "options": options})
    return out


def _place_thresholds(path, folding, totals, cap, placed=None):
    """(placed folding, projected totals, "thresholds: ..." or "") with the threshold memories of
    ``folding`` moved out of LUTRAM, to BRAM and then URAM, until the LUTs are within ``cap``: at
    each step the move that frees the most LUTs per share of the block budget it takes.
    ``placed``: ``folding`` with other memories already placed (the moves are made on it)."""
    placed = json.loads(json.dumps(placed or folding))
    state = {}  # layer -> (kind, its projected resources)
    for kind, res in _THRESHOLD_KINDS.items():
        if cap[res] <= 0 or totals["LUT"] <= cap["LUT"]:
            continue
        mems = [m for m in _threshold_memories(path, folding, kind) if state.get(m["layer"], (kind,))[0] == kind]
        while totals["LUT"] > cap["LUT"]:
            best = None
            for mem in mems:
                now = state.get(mem["layer"], (None, mem["now"]))[1]
                for trig, alt in mem["options"]:
                    after = _moved(totals, now, alt)
                    freed = now["LUT"] - alt["LUT"]
                    if freed <= 0 or any(after[r] > cap[r] + 1e-9 for r in ("BRAM_18K", "URAM")):
                        continue
                    score = freed / max(sum((alt[r] - now[r]) / cap[r] for r in ("BRAM_18K", "URAM") if cap[r] > 0),
                                        1e-9)
                    if best is None or score > best[0]:
                        best = (score, mem["layer"], trig, alt, after)
            if best is None:
                break
            _, layer, trig, alt, after = best
            placed[layer].update(trig)
            state[layer], totals = (kind, alt), after
    moved = [kind for kind, _ in state.values()]
    label = ", ".join(f"{moved.count(k)} to {k}" for k in _THRESHOLD_KINDS if k in moved)
    return placed, totals, f"thresholds: {label}" if moved else ""


def place_design(path: EstimatePath, folding: dict, design: dict, board: dict, utilization: float,
                 thresholds: bool = True):
    """(folding, design) of an over-budget design with its memories placed (weights out of BRAM
    when BRAM is over, then thresholds out of LUTRAM when LUTs are over), projected with FINN+'s
    per-node models and evaluated once for real; None if nothing moved."""
    cap = budget(board, utilization)
    totals, placed, labels = {r: design[r] for r in RESOURCES}, folding, []
    if totals["BRAM_18K"] > cap["BRAM_18K"]:
        placed, totals, label = _place_weights(path, placed, design, totals, cap)
        labels.append(label)
    if thresholds and totals["LUT"] > cap["LUT"]:
        placed, totals, label = _place_thresholds(path, folding, totals, cap, placed)
        labels.append(label)
    labels = [label for label in labels if label]
    if not labels:
        return None
    return placed, {**path.evaluate(placed), "placement": "; ".join(labels)}


# --------------------------------------------------------------------------- one network


def search_network(path: EstimatePath, network: str, board: dict, utilization: float, fps_start: float,
                   fps_factor: float, mvau_wwidth_max: int | None, refine_steps: int = 5, max_rungs: int = 40,
                   log=None, *, stream_cap: bool = True, dsp_pairing: bool = True,
                   threshold_placement: bool = True) -> tuple[pd.DataFrame, list[dict], str]:
    """Designs of one network on one board: (table with DESIGN_COLUMNS, their foldings, the limit of
    the fastest fitting one). ``stream_cap``, ``dsp_pairing``, ``threshold_placement``: the
    search's tuning and placement of thresholds (module docstring), on by default.

    The limit names what stops the fastest fitting design from going faster: "resources: the
    next faster design needs ..." when a faster design was evaluated and is over budget; "held
    back: <layer> at <cycles> cycles (<cause>) ..." when one of its slowest layers could be
    more parallel but FINN keeps it from that; "fully unfolded (...)" only when each slowest
    layer is at its maximum parallelism.
    """
    rows, foldings, evaluated = [], [], []  # evaluated: the best design of each target tried

    def add(target, folding, design, changes):
        placement = design.get("placement", DEFAULT_PLACEMENT)
        embedded = sum(1 for name, attrs in folding.items()  # matrix units (node names carry the op type)
                       if name.startswith("MVAU") and attrs.get("mem_mode") == "internal_embedded")
        if embedded:
            placement += f"; weights of {embedded} matrix unit(s) embedded in the HLS kernel (weight stream cap)"
        rows.append({"network": network, "design": len(rows), "target_fps": target,
                     "placement": placement, "folding_changes": changes,
                     **{k: design[k] for k in DESIGN_COLUMNS
                        if k in design and k not in ("network", "design", "placement", "folding_changes")}})
        foldings.append(folding)
        return rows[-1]

    def evaluate(target):
        folding, changes = tuned_folding(path, target, mvau_wwidth_max, stream_cap, dsp_pairing)
        design = path.evaluate(folding)
        best = (add(target, folding, design, changes), folding, design)
        if not fits(best[0], board, utilization):
            placed = place_design(path, folding, design, board, utilization, thresholds=threshold_placement)
            if placed is not None:
                best = (add(target, *placed, changes), *placed)
        else:  # fits alone: a variant with BRAM left for a partner (a row of its own, for the pair search)
            placed = place_memories(path, folding, design, board, utilization, PAIR_BRAM_SHARE)
            if placed is not None:
                add(target, placed[0], {**placed[1], "placement": f"{placed[1]['placement']} (BRAM for a pair)"},
                    changes)
        row = best[0]
        evaluated.append({"target": target, "row": row, "folding": best[1], "design": best[2],
                          "fits": fits(row, board, utilization)})
        if log:
            print(f"{board['name']} {network}: target {target:,.0f} FPS -> {row['estimated_throughput_fps']:,.0f} "
                  f"FPS, {', '.join(f'{r} {row[r]:.0f}' for r in RESOURCES)} ({row['placement']})"
                  + ("" if evaluated[-1]["fits"] else " over budget")
                  + (f" [{changes}]" if changes else ""), file=log, flush=True)
        return evaluated[-1]

    def fastest_fitting():
        fitting = [e for e in evaluated if e["fits"]]
        return min(fitting, key=lambda e: (e["row"]["max_cycles"], e["target"])) if fitting else None

    def next_faster(than):
        faster = [e for e in evaluated if e["row"]["max_cycles"] < than["row"]["max_cycles"]]
        return max(faster, key=lambda e: (e["row"]["max_cycles"], -e["target"])) if faster else None

    # the ladder: past rungs that do not fit, until SetFolding misses its target and max_cycles stops falling
    target, previous, saturated = fps_start, None, False
    for _ in range(max_rungs):
        now = evaluate(target)
        missed = now["row"]["max_cycles"] > path.target_cycles(target)
        if missed and previous is not None and now["row"]["max_cycles"] >= previous["row"]["max_cycles"]:
            saturated = True  # faster targets change nothing: FINN parallelises this network no further
            break
        previous, target = now, target * fps_factor
    # bisection between the fastest fitting design and the next faster one
    best = fastest_fitting()
    faster = next_faster(best) if best is not None else None
    if best is not None and faster is not None and best["target"] < faster["target"]:
        lo, hi = best["target"], faster["target"]
        for _ in range(refine_steps):
            mid = math.sqrt(lo * hi)
            if evaluate(mid)["fits"]:
                lo = mid
            else:
                hi = mid
    designs = pd.DataFrame(rows, columns=DESIGN_COLUMNS)
    best = fastest_fitting()
    if best is None:
        return designs, foldings, (f"does not fit: even the slowest folding needs "
                                   f"{over_budget(evaluated[0]['row'], board, utilization)}")
    faster = next_faster(best)
    if faster is not None:
        return designs, foldings, f"resources: the next faster design needs {over_budget(faster['row'], board, utilization)}"
    slowest = slowest_layers(path, best["folding"], best["design"], mvau_wwidth_max)
    held = [s for s in slowest if s["fastest"] < s["cycles"]]
    if not held:
        lay = slowest[0]
        return designs, foldings, (f"fully unfolded (slowest layer {lay['layer']}: {lay['cycles']} cycles, "
                                   "at its maximum parallelism)")
    if not saturated:
        return designs, foldings, f"search stopped after {max_rungs} rungs (raise hardware.fps_start)"
    return designs, foldings, "held back: " + "; ".join(
        f"{s['layer']} at {s['cycles']} cycles ({s['cause']}; {s['fastest']} cycles at its maximum parallelism)"
        for s in held)


# --------------------------------------------------------------------------- replication and pairs
