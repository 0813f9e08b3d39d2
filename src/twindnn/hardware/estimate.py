"""One estimate path: the numbers FINN+'s estimate build reports for a folding, and the corrections
that every table applies to them.

The search (:mod:`twindnn.hardware.search`) evaluates a folding by calling FINN+'s own build
steps in the order the estimate build runs them (``step_specialize_layers``,
``step_apply_folding_config``, ``step_minimize_bit_width``, ``step_generate_estimate_reports``),
and reads the reports with :func:`read_reports`, the same reader the build uses. So the
numbers the search optimises are the numbers the build reports (``tests/test_hardware_finn.py``
builds one folding both ways and compares them).

Declared corrections and gaps (finn-plus 1.6.1):

- **DSPs of RTL matrix units.** FINN+ counts ``ceil(PE / 4) * SIMD`` DSP48s for every
  ``MVAU_rtl``/``VVAU_rtl``; the RTL (``finn-rtllib/mvu/mvu.sv``) packs
  ``1 + (A_WIDTH - !NARROW_WEIGHTS - W) // (W + A - 1)`` lanes per DSP (A_WIDTH 27 on a DSP48E2,
  25 on a DSP48E1): 2 lanes, not 4, for 8-bit weights and activations. :func:`rtl_mvu_dsps`
  recomputes the count from the RTL's formula; the report keeps FINN+'s number beside it.
- **Nodes without a resource model.** FINN+ estimates 0 LUT for ``MVAU_rtl`` (its LUT use is
  not modelled) and 0 of everything for some node types (``FMPadding_rtl``, ``DuplicateStreams``,
  ``ElementwiseAdd``, ``GlobalAccPool``, ...). :func:`zero_estimated` lists them per design;
  the tables carry the list.
- **Latency** is FINN's critical path (``estimated_latency_ns`` of
  ``estimate_network_performance.json``) everywhere.
- **Threshold memories** (``Thresholding_rtl``) are placed by the depth triggers
  ``depth_trigger_bram``/``depth_trigger_uram`` (part of the folding config, applied by
  ``step_apply_folding_config`` like PE and SIMD). FINN+'s estimate and the RTL
  (``finn-rtllib/thresholding/hdl/thresholding.sv``) agree on a stage of depth ``d`` when both
  triggers are set: URAM for ``d >= depth_trigger_uram``, BRAM for ``depth_trigger_bram <= d <
  depth_trigger_uram``; below both the RTL takes LUTRAM and the estimate the least wasteful
  primitive (LUTRAM but for exact fits). With only ``depth_trigger_bram`` set the estimate would
  put every stage in URAM (its test is ``depth >= depth_trigger_uram``, true for 0), so a BRAM
  placement sets ``depth_trigger_uram`` to :data:`NO_TRIGGER` (never reached).
- **Embedded weights** (``mem_mode="internal_embedded"``, HLS matrix units only): FINN+ counts
  them as LUTs for up to 128 words per PE and SIMD lane, above that as BRAM *and* URAM (its
  ``uram_estimation`` does not exclude the mode); the search reports what FINN+ estimates.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from finn.transformation.fpgadataflow.set_folding import SetFolding
from finn.util.basic import get_dsp_block
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from .boards import RESOURCES
from .fifo import fifo_totals, skip_fifos
from .finn_env import (
    ESTIMATE_OUTPUTS,
    ESTIMATE_STEPS,
    MATRIX_UNITS,
    build_config,
    prepare_finn,
    write_specialize_config,
)

# Attributes a folding config sets (FINN's own list, as step_apply_folding_config writes it back).
FOLDING_ATTRS = ["PE", "SIMD", "parallel_window", "ram_style", "ram_style_thresholds", "resType", "mem_mode",
                 "runtime_writeable_weights", "mac_resource", "impl_style", "depth_trigger_uram", "depth_trigger_bram"]
NO_TRIGGER = 2**31 - 1  # a depth trigger no memory reaches (the RTL parameter is a 32-bit int unsigned)
_RTLMATRIX_UNITS = ("MVAU_rtl", "VVAU_rtl")
# What FINN+'s step_minimize_bit_width reads of a node's storage (finn-plus 1.6.1,
# custom_op/fpgadataflow/*: minimize_weight_bit_width, minimize_accumulator_width): weights written
# at run time, or kept outside the layer (these mem_modes), keep their declared widths, thresholds
# tuned by MLO too; RAM styles and the internal mem_modes do not enter. PE and SIMD do not either.
_MINIMIZE_ATTRS = ("runtime_writeable_weights", "mlo_max_iter")
_EXTERNAL_MEM_MODES = ("external", "external_mem", "dynamic")
_A_WIDTH = {"DSP48E1": 25, "DSP48E2": 27}


def minimize_key(folding: dict) -> str:
    """What the outcome of ``step_minimize_bit_width`` depends on in a folding config."""
    key = {}
    for name, attrs in sorted(folding.items()):
        entry = {a: attrs[a] for a in _MINIMIZE_ATTRS if attrs.get(a)}
        if attrs.get("mem_mode") in _EXTERNAL_MEM_MODES:
            entry["mem_mode"] = attrs["mem_mode"]
        if entry:
            key[name] = entry
    return json.dumps(key, sort_keys=True)


def rtl_lanes(weight_bits: int, act_bits: int, narrow_weights: bool, dsp_block: str) -> int:
    """Products one DSP48 computes side by side in an RTL matrix unit (along PE), as
    ``finn-rtllib/mvu/mvu.sv`` packs them; 1 on a DSP58 (which packs 3 along SIMD instead)."""
    if dsp_block == "DSP58":
        return 1
    a_width = _A_WIDTH[dsp_block]
    lanes = 1 if a_width == weight_bits else 1 + (a_width - (not narrow_weights) - weight_bits) // (
        weight_bits + act_bits - 1)
    return max(1, lanes)


def rtl_mvu_dsps(pe: int, simd: int, weight_bits: int, act_bits: int, narrow_weights: bool,
                 dsp_block: str) -> int:
    """DSP blocks of one RTL matrix unit, lanes per DSP as ``finn-rtllib/mvu/mvu.sv`` packs them."""
    if dsp_block == "DSP58":  # mvu_vvu_8sx9_dsp58: 3 products per DSP58 (FINN+'s own count)
        return int(pe * math.ceil(simd / 3))
    return int(math.ceil(pe / rtl_lanes(weight_bits, act_bits, narrow_weights, dsp_block)) * simd)


def rtl_dsp_block(fpga_part: str) -> str | None:
    """The DSP block whose RTL lane packing :func:`rtl_mvu_dsps` models, else None."""
    block = get_dsp_block(fpga_part)
    return block if block in (*_A_WIDTH, "DSP58") else None


def rtl_operands(model, node) -> tuple[int, int, bool]:
    """(weight bits, activation bits, narrow-range weights) of an RTL matrix unit, as its HDL
    generation reads them (``MVAU_rtl.generate_hdl``)."""
    inst = getCustomOp(node)
    weights = model.get_initializer(node.input[1])
    wdt = inst.get_input_datatype(1)
    narrow = not (weights is None or np.min(weights) == wdt.min()
                  or inst.get_nodeattr("mem_mode") in ("dynamic", "external_mem"))
    return wdt.bitwidth(), inst.get_input_datatype(0).bitwidth(), narrow


def _dsp_corrections(model, fpga_part: str) -> dict[str, tuple[int, int]]:
    """{node: (FINN+'s DSP count, the RTL's)} for the RTL matrix units of ``model``."""
    block = rtl_dsp_block(fpga_part)
    out = {}
    for node in model.graph.node:
        if node.op_type not in _RTLMATRIX_UNITS or block is None:
            continue
        inst = getCustomOp(node)
        finn = int(inst.dsp_estimation(fpga_part))
        rtl = rtl_mvu_dsps(inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD"), *rtl_operands(model, node), block)
        out[node.name] = (finn, rtl)
    return out


def read_reports(report_dir, clock_mhz: float, model, fpga_part: str, uram: bool = True) -> dict:
    """A design's figures from FINN+'s estimate reports, with the declared corrections applied,
    and beside them (``fifo_<resource>``, not added in) the skip-connection FIFOs FINN+'s estimate
    leaves out (:func:`twindnn.hardware.fifo.skip_fifos`; ``uram``: whether the part has URAM for them).

    ``model`` is the graph the reports were made from (for the node types, the RTL DSP count and the FIFOs).
    """
    report = Path(report_dir)
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    resources = json.loads((report / "estimate_layer_resources.json").read_text())
    cycles = json.loads((report / "estimate_layer_cycles.json").read_text())
    op_types = {n.name: n.op_type for n in model.graph.node}
    dsp_fix = _dsp_corrections(model, fpga_part)
    layers = []
    for name, res in resources.items():
        if name == "total":
            continue
        row = {"layer": name, "op_type": op_types.get(name, ""), "cycles": int(cycles.get(name, 0)),
               **{r: float(res.get(r, 0.0)) for r in RESOURCES}}
        if name in dsp_fix:
            row["DSP_finn"], row["DSP"] = float(dsp_fix[name][0]), float(dsp_fix[name][1])
        layers.append(row)
    bottleneck = max(layers, key=lambda lay: lay["cycles"]) if layers else {"layer": "", "cycles": 0}
    out = {
        "clock_mhz": clock_mhz,
        "estimated_throughput_fps": float(perf["estimated_throughput_fps"]),
        "estimated_latency_ms": float(perf["estimated_latency_ns"]) * 1e-6,  # FINN's critical path
        "max_cycles": int(perf["max_cycles"]),
        "critical_path_cycles": int(perf["critical_path_cycles"]),
        "bottleneck_layer": bottleneck["layer"],
        "bottleneck_cycles": int(bottleneck["cycles"]),
        **{r: float(sum(lay[r] for lay in layers)) for r in RESOURCES},
        "DSP_finn": float(sum(lay.get("DSP_finn", lay["DSP"]) for lay in layers)),
        "zero_estimated": zero_estimated(layers),
        "layers": layers,
    }
    fifos = skip_fifos(model, fpga_part, mem_style="auto" if uram else "block")
    totals = fifo_totals(fifos)
    out.update({f"fifo_{r}": float(totals[r]) for r in RESOURCES})
    out.update(fifos=int(totals["fifos"]), fifo_depth_max=int(totals["fifo_depth_max"]))
    return out


def zero_estimated(layers: list[dict]) -> str:
    """Node types with no resource model in FINN+ (all 0), and RTL matrix units (0 LUT by definition)."""
    empty = sorted({lay["op_type"] for lay in layers if not any(lay[r] for r in RESOURCES)})
    no_lut = sorted({lay["op_type"] for lay in layers if lay["op_type"] in _RTLMATRIX_UNITS})
    parts = []
    if empty:
        parts.append("no estimate (0): " + ", ".join(empty))
    if no_lut:
        parts.append("LUT not estimated (0): " + ", ".join(no_lut))
    return "; ".join(parts)


def mac_attributes(folding: dict, mac: str) -> dict:
    """``folding`` with the HLS matrix units' ``resType`` set for the MAC resource choice."""
    if mac == "auto":
        return folding
    out = json.loads(json.dumps(folding))
    for name, attrs in out.items():
        if name.split("_")[0] in MATRIX_UNITS and name.split("_")[1:2] == ["hls"] and "resType" in attrs:
            attrs["resType"] = mac
    return out


class EstimatePath:
    """FINN+'s estimate build of one prepared network on one board, evaluated in memory.

    ``specialized`` is the output of ``step_specialize_layers`` (computed once: it does not depend
    on the folding); :meth:`fold` is ``step_target_fps_parallelization`` (FINN's ``SetFolding``);
    :meth:`evaluate` runs the build's remaining estimate steps on a folding config.
    """

    def __init__(self, dataflow_onnx, board: dict, mac: str = "auto"):
        prepare_finn(False)
        from finn.builder.build_dataflow_steps import step_specialize_layers  # needs prepare_finn() first

        self.board, self.mac = board, mac
        self._tmp = tempfile.TemporaryDirectory(prefix="twindnn_estimate_")
        self._specialize = write_specialize_config(dataflow_onnx, mac, Path(self._tmp.name) / "specialize.json")
        cfg = self._cfg()
        self.specialized = step_specialize_layers(ModelWrapper(str(dataflow_onnx)), cfg)
        self._minimized: dict[str, object] = {}
        self._evaluated: dict[str, dict] = {}  # folding config (JSON) -> its figures

    def _cfg(self, **extra):
        if self._specialize is not None:
            extra["specialize_layers_config_file"] = str(self._specialize)
        return build_config(self._tmp.name, ESTIMATE_STEPS, ESTIMATE_OUTPUTS, self.board["part"],
                            self.board["clock_mhz"], standalone_thresholds=True, **extra)

    def target_cycles(self, target_fps: float) -> int:
        """The cycles per frame ``SetFolding`` is asked for at ``target_fps``."""
        return max(1, int(self.board["clock_mhz"] * 1e6 / max(float(target_fps), 1e-9)))

    def fold(self, target_fps: float, mvau_wwidth_max: int | None, embedded=()) -> dict:
        """The folding config FINN's ``SetFolding`` chooses for ``target_fps`` (no SIMD cap when None).

        ``embedded``: matrix units folded with ``mem_mode="internal_embedded"`` (SetFolding caps
        the PE of ``internal_decoupled`` HLS units at an 8191-bit weight stream, not theirs).
        """
        model = copy.deepcopy(self.specialized)
        for node in model.graph.node:
            if node.name in embedded:
                getCustomOp(node).set_nodeattr("mem_mode", "internal_embedded")
        model = model.transform(SetFolding(self.target_cycles(target_fps),
                                           mvau_wwidth_max=int(mvau_wwidth_max or 2**31 - 1)))
        return mac_attributes(folding_config(model), self.mac)

    def evaluate(self, folding: dict) -> dict:
        """The estimate build's figures for ``folding`` (see :func:`read_reports`).

        ``step_minimize_bit_width`` is the costliest step (nine tenths of the time before its datatype
        checks were made whole-array, :mod:`twindnn.hardware.finn_env`) and depends on no attribute the
        search changes (:func:`minimize_key`): its result is reused across foldings with the same
        key, and the folding applied again on top. A folding evaluated before (a rung whose target
        SetFolding answers with a folding it gave already) is not built again: its figures are
        returned (a copy). The search-vs-build test and the check in :mod:`twindnn.hardware.tables`
        hold this to the build's numbers.
        """
        from finn.builder.build_dataflow_steps import step_generate_estimate_reports  # needs prepare_finn() first

        key = json.dumps(folding, sort_keys=True)
        if key not in self._evaluated:
            cfg = self._folding_cfg(folding)
            model = step_generate_estimate_reports(self._applied(folding, cfg), cfg)
            self._evaluated[key] = read_reports(cfg.get_report_directory(), self.board["clock_mhz"], model,
                                                self.board["part"], uram=float(self.board["resources"]["URAM"]) > 0)
        return copy.deepcopy(self._evaluated[key])

    def minimized(self, folding: dict):
        """The graph the estimate reports of ``folding`` are made from (bit widths minimized,
        ``folding`` applied): the datatypes FINN+'s per-node models see."""
        return self._applied(folding, self._folding_cfg(folding))

    def _applied(self, folding: dict, cfg):
        from finn.builder.build_dataflow_steps import (  # needs prepare_finn() first
            step_apply_folding_config,
            step_minimize_bit_width,
        )

        key = minimize_key(folding)
        if key not in self._minimized:
            model = step_apply_folding_config(copy.deepcopy(self.specialized), cfg)
            self._minimized[key] = step_minimize_bit_width(model, cfg)
        return step_apply_folding_config(copy.deepcopy(self._minimized[key]), cfg)

    def _folding_cfg(self, folding: dict):
        path = Path(self._tmp.name) / "folding.json"
        path.write_text(json.dumps(folding))
        cfg = self._cfg(folding_config_file=str(path))
        cfg.get_report_directory().mkdir(parents=True, exist_ok=True)
        return cfg


def folding_config(model) -> dict:
    """FINN folding config (``folding_config_file`` JSON) of a folded model."""
    cfg = {"Defaults": {}}
    for node in model.graph.node:
        inst = getCustomOp(node)
        types = inst.get_nodeattr_types()
        cfg[node.name] = {a: inst.get_nodeattr(a) for a in FOLDING_ATTRS if a in types}
    return cfg
