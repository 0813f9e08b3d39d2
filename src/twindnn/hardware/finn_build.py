"""FINN+ builds of the twin and the 8-bit original: estimate-only everywhere, bitstream with Vivado.

Estimate-only without Vivado
----------------------------
finn-plus 1.6.1 has no official estimate-only mode without a Vivado install. It works
once three things are done, and :func:`prepare_finn` is the only place that does them:

1. ``finn.util.settings.initialize_dummy_settings()`` (otherwise FINN demands its CLI);
2. ``finn.xsi.SimEngine`` is set before ``finn.builder.build_dataflow_steps`` is imported
   (the import otherwise loads Vivado's XSI simulator); a placeholder class is enough,
   since no estimate step simulates anything;
3. ``XILINX_VIVADO`` names a path (read only for the build's metadata).

With ``vivado=True`` none of these placeholders is installed: FINN is initialized
against the real ``XILINX_VIVADO`` (and refuses clearly where it is missing).

Residual networks
-----------------
FINN's default streamlining stops at the forks and adds of residual blocks.
:func:`step_residual_streamline` moves scalar scales past forks first
(``MoveLinearPastFork``) and only then past the adds (``MoveLinearPastEltwiseAdd``):
in the other order the graph is corrupted. Forks become ``DuplicateStreams`` and
adds ``ElementwiseAdd``; their analytical resource estimates are 0, which the
resource tables list them (column ``zero_estimated``). Any node that FINN cannot map
to hardware stops the build with :class:`UnmappedNodeError` naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np

# Board-independent front end, run once per network: QONNX -> HW layers -> dataflow partition.
PREPARE_STEPS = [
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_residual_streamline",
    "step_convert_to_hw",
    "step_check_all_mapped",
    "step_minimize_bit_width_initial",
    "step_create_dataflow_partition",
]
# Per board and folding, from the prepared dataflow model.
ESTIMATE_STEPS = [
    "step_specialize_layers",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
]
BITSTREAM_STEPS = [
    "step_generate_hardware",
    "step_create_stitched_ip",
    "step_synthesize_bitfile",
    "step_make_driver",
    "step_deployment_package",
]


class UnmappedNodeError(RuntimeError):
    """A node that FINN could not map to a hardware layer (it would fall outside the dataflow partition)."""


class VivadoMissingError(RuntimeError):
    """A bitstream build was requested but Vivado is not installed or not on the environment."""


_PREPARED: str | None = None


def vivado_path() -> str | None:
    """The Vivado install named by ``XILINX_VIVADO`` (or found on PATH), else None."""
    env = os.environ.get("XILINX_VIVADO")
    if env and Path(env, "bin", "vivado").exists():
        return env
    exe = shutil.which("vivado")
    return str(Path(exe).parent.parent) if exe else None


def prepare_finn(vivado: bool = False) -> None:
    """Initialize finn-plus once per process: estimate-only placeholders, or the real Vivado.

    This is the single place where FINN+ is made to run without Vivado (see module docstring).
    """
    global _PREPARED
    mode = "vivado" if vivado else "estimate"
    if _PREPARED == mode:
        return
    if _PREPARED is not None:
        raise RuntimeError(f"FINN+ was already initialized for {_PREPARED!r} builds in this process.")
    if vivado:
        path = vivado_path()
        if path is None:
            raise VivadoMissingError(
                "hardware.vivado is true but no Vivado was found: set XILINX_VIVADO to a Vivado install "
                "(with bin/vivado) or put vivado on PATH, and for Alveo boards also Vitis (XILINX_VITIS) "
                "and the platform files. Set hardware.vivado: false for estimate-only builds."
            )
        os.environ["XILINX_VIVADO"] = path
    else:
        os.environ.setdefault("XILINX_VIVADO", "/nonexistent/vivado-not-needed-for-estimates")
        import finn.xsi

        if "SimEngine" not in vars(finn.xsi):

            class _NoSimulator:  # estimate steps never simulate
                def __init__(self, *args, **kwargs):
                    raise RuntimeError("RTL simulation needs Vivado's XSI; this is an estimate-only FINN+ setup.")

            finn.xsi.SimEngine = _NoSimulator
    from finn.util import settings

    if getattr(settings, "_SETTINGS", None) is None:
        settings.initialize_dummy_settings()
    _PREPARED = mode


# --------------------------------------------------------------------------- custom steps


def step_residual_streamline(model, cfg):
    """Streamlining for ResNets: scales move past forks, then past adds, then into thresholds.

    Also: the input becomes NHWC (what the accelerator streams), the global average pool
    becomes FINN's GlobalAccPool with its 1/(H*W) scale absorbed into the next thresholds,
    and the classifier's trailing float scale is handed to the host (see ``host_output_scale.json``).
    """
    from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline import absorb, reorder
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
    from qonnx.transformation.make_input_chanlast import MakeInputChannelsLast

    def residual_rounds(m, max_rounds=4):
        m = m.transform(Streamline())
        for _ in range(max_rounds):
            before = _signature(m)
            m = m.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
            # Order matters: past the forks first, then past the adds.
            m = m.transform(reorder.MoveLinearPastFork())
            m = m.transform(reorder.MoveLinearPastEltwiseAdd())
            m = m.transform(reorder.MoveScalarLinearPastInvariants())
            if _signature(m) == before:
                break
            m = m.transform(Streamline())
        return m

    model = residual_rounds(model)
    model = model.transform(InferGlobalAccPoolLayer())
    model = model.transform(LowerConvsToMatMul())
    model = absorb_bipolar_pads(model)
    model = model.transform(MakeInputChannelsLast())
    model = _transposes_to_edges(model)
    model = model.transform(ConvertBipolarMatMulToXnorPopcount())
    model = _binary_pad_value(model)
    model = residual_rounds(model)
    model = _transposes_to_edges(model)
    model = _drop_pooled_transpose(model)
    # Thresholds below an unsigned input's minimum are clipped (hardware needs them in range).
    model = model.transform(InferDataTypes())
    model = model.transform(RoundAndClipThresholds())
    model = _strip_output_scale(model, cfg)
    model = model.transform(InferDataLayouts())
    model = model.transform(RemoveUnusedTensors())
    return model


def absorb_bipolar_pads(model):
    """Fold each ``Pad`` (constant -1) of a bipolar map into the ``Im2Col`` of the conv it feeds.

    The twin pads bipolar maps with -1 (``twindnn.models.BipolarPad``), as XNOR hardware does;
    the export puts a ``Pad`` in front of an unpadded conv, which FINN cannot map (its
    ``FMPadding`` pads with 0). Here the pad becomes the input generator's padding with
    ``pad_value`` -1, and after the XNOR conversion (bipolar -1 stored as binary 0) the
    ``pad_value`` becomes 0 (``_binary_pad_value``): the graph computes the same function at
    every step. Pattern after ``LowerConvsToMatMul``: Pad -> Transpose(NCHW->NHWC) -> Im2Col.
    """
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    graph = model.graph
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        if model.get_tensor_datatype(pad.input[0]) != DataType["BIPOLAR"]:
            continue
        value = model.get_initializer(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else None
        pads = model.get_initializer(pad.input[1])
        transpose = model.find_consumer(pad.output[0])
        if value is None or float(value) != -1.0 or pads is None or len(pads) != 8 or transpose is None:
            continue
        pads = [int(p) for p in pads]  # N, C, H, W begins, then ends
        if pads[0] or pads[1] or pads[4] or pads[5] or transpose.op_type != "Transpose":
            continue
        im2col = model.find_consumer(transpose.output[0])
        if im2col is None or im2col.op_type != "Im2Col" or len(model.find_consumers(pad.output[0])) != 1:
            continue
        inst = getCustomOp(im2col)
        old = list(inst.get_nodeattr("pad_amount"))  # H begin, W begin, H end, W end
        if any(old) and inst.get_nodeattr("pad_value") != -1:
            continue
        inst.set_nodeattr("pad_amount", [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]])
        inst.set_nodeattr("pad_value", -1)
        # The Im2Col's input is the unpadded map again: take the Pad out of the chain.
        n, c, h, w = model.get_tensor_shape(pad.input[0])
        inst.set_nodeattr("input_shape", str((n, h, w, c)))
        transpose.input[0] = pad.input[0]
        graph.node.remove(pad)
        stale = {pad.output[0], transpose.output[0]}
        for vi in [vi for vi in graph.value_info if vi.name in stale]:
            graph.value_info.remove(vi)
    return _reshape(model)


def _binary_pad_value(model):
    """After the XNOR conversion a bipolar -1 is stored as binary 0: pad with 0 there."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    for node in model.get_nodes_by_op_type("Im2Col"):
        inst = getCustomOp(node)
        if inst.get_nodeattr("pad_value") == -1 and model.get_tensor_datatype(node.input[0]) == DataType["BINARY"]:
            inst.set_nodeattr("pad_value", 0)
    return model


def _reshape(model):
    """Shapes (of tensors whose value_info was removed) and datatypes again; orphans dropped."""
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    model = model.transform(RemoveUnusedTensors())
    return model.transform(InferShapes()).transform(InferDataTypes())


def _transposes_to_edges(model, max_rounds=6):
    """Cancel the layout Transposes that lowering puts around every conv, through forks and adds.

    Without this each one becomes a FINN Shuffle layer (real hardware and latency)."""
    from finn.transformation.streamline import absorb, reorder

    for _ in range(max_rounds):
        before = _signature(model)
        for t in (absorb.AbsorbTransposeIntoMultiThreshold(), reorder.MoveTransposePastFork(),
                  reorder.MoveTransposePastJoinAdd(), absorb.AbsorbConsecutiveTransposes()):
            model = model.transform(t)
        if _signature(model) == before:
            break
    return model


def _drop_pooled_transpose(model):
    """Remove NHWC->NCHW Transposes of 1x1 (globally pooled) maps feeding a Flatten: a no-op on data."""
    for node in list(model.graph.node):
        if node.op_type != "Transpose":
            continue
        shape = model.get_tensor_shape(node.input[0])
        consumer = model.find_consumer(node.output[0])
        if shape is None or len(shape) != 4 or shape[1] != 1 or shape[2] != 1:
            continue
        if consumer is None or consumer.op_type not in ("Flatten", "Reshape"):
            continue
        consumer.input[0] = node.input[0]
        model.graph.node.remove(node)
    return model


def _signature(model) -> tuple:
    return tuple((n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node)


def _strip_output_scale(model, cfg):
    """Remove trailing scalar Mul/Add after the classifier and record them for the host."""
    out_scale, out_bias = 1.0, 0.0
    while True:
        out_name = model.graph.output[0].name
        producer = model.find_producer(out_name)
        if producer is None or producer.op_type not in ("Mul", "Add"):
            break
        const = model.get_initializer(producer.input[1])
        if const is None or const.size != 1:
            break
        value = float(const.reshape(-1)[0])
        if producer.op_type == "Mul":
            if value <= 0:
                break
            out_scale, out_bias = out_scale * value, out_bias * value
        else:
            out_bias += value
        # Rewire: the producer's input becomes the graph output.
        new_out = producer.input[0]
        vi = next((v for v in model.graph.value_info if v.name == new_out), None)
        model.graph.node.remove(producer)
        if vi is not None:
            model.graph.value_info.remove(vi)
            model.graph.output[0].CopyFrom(vi)
        else:
            model.graph.output[0].name = new_out
    report = Path(cfg.output_dir) / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "host_output_scale.json").write_text(
        json.dumps({"logit_scale": out_scale, "logit_bias": out_bias,
                    "note": "host logits = accelerator output * logit_scale + logit_bias"}, indent=2))
    return model


def step_check_all_mapped(model, cfg):
    """Stop with an error naming every node FINN could not map to a hardware layer."""
    unmapped = [f"{n.name} ({n.op_type})" for n in model.graph.node
                if not n.domain.startswith("finn.custom_op.fpgadataflow")]
    if unmapped:
        raise UnmappedNodeError(
            "FINN+ could not map these nodes to hardware, so they would fall outside the dataflow "
            "partition: " + ", ".join(unmapped)
        )
    return model


# --------------------------------------------------------------------------- builds


def _config(output_dir, steps, outputs, fpga_part, clock_mhz, **extra):
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    custom = {"step_residual_streamline": step_residual_streamline, "step_check_all_mapped": step_check_all_mapped}
    return DataflowBuildConfig(
        output_dir=str(output_dir), synth_clk_period_ns=1000.0 / float(clock_mhz),
        steps=[custom.get(s, s) for s in steps], generate_outputs=outputs, fpga_part=fpga_part,
        verbose=False, enable_build_pdb_debug=False, **extra,
    )


def prepare_network(onnx_path, output_dir, fpga_part: str = "xczu7ev-ffvc1156-2-e") -> Path:
    """Front end (board-independent): the dataflow model with every node a HW layer.

    Returns the path of ``dataflow.onnx`` in ``output_dir`` (``host_output_scale.json`` beside it).
    ``fpga_part`` only matters for FINN's bookkeeping here; specialization happens per board.
    """
    prepare_finn(False)
    from finn.builder.build_dataflow_config import DataflowOutputType

    output_dir = Path(output_dir)
    work = output_dir / "build"
    cfg = _config(work, PREPARE_STEPS, [DataflowOutputType.ESTIMATE_REPORTS], fpga_part, 100.0,
                  target_fps=1, standalone_thresholds=True)
    _run(onnx_path, cfg)
    out = output_dir / "dataflow.onnx"
    shutil.copy(work / "intermediate_models" / "step_create_dataflow_partition.onnx", out)
    shutil.copy(work / "report" / "host_output_scale.json", output_dir / "host_output_scale.json")
    return out


def build_network(dataflow_onnx, output_dir, board: dict, folding_config, *, vivado: bool = False,
                  mac: str = "auto") -> dict:
    """Per-board build from the prepared model with a folding config: estimates, or (``vivado``)
    on to the bitstream, driver and deployment package. ``mac``: the matrix units' resource
    (:func:`twindnn.hardware.estimate.specialize_config`). Returns :func:`read_estimates`."""
    from .estimate import specialize_config

    prepare_finn(vivado)
    from finn.builder.build_dataflow_config import DataflowOutputType, ShellFlowType

    steps, outputs, extra = list(ESTIMATE_STEPS), [DataflowOutputType.ESTIMATE_REPORTS], {}
    if vivado:
        steps += BITSTREAM_STEPS
        outputs += [DataflowOutputType.BITFILE, DataflowOutputType.PYNQ_DRIVER, DataflowOutputType.DEPLOYMENT_PACKAGE]
        extra = dict(board=board["finn_board"], shell_flow_type=ShellFlowType.VITIS_ALVEO
                     if board.get("shell") == "alveo" else ShellFlowType.VIVADO_ZYNQ)
    spec = specialize_config(dataflow_onnx, mac)
    if spec is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        extra["specialize_layers_config_file"] = str(Path(output_dir).absolute() / "specialize_config.json")
        Path(extra["specialize_layers_config_file"]).write_text(json.dumps(spec))
    cfg = _config(output_dir, steps, outputs, board["part"], board["clock_mhz"],
                  folding_config_file=str(folding_config), standalone_thresholds=True, **extra)
    _run(dataflow_onnx, cfg)
    return read_estimates(output_dir, board)


def _run(onnx_path, cfg) -> None:
    from finn.builder.build_dataflow import build_dataflow_cfg
    from finn.util.settings import get_settings

    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    # FINN's scratch files go beside the build, not into the working directory.
    get_settings().finn_build_dir = (Path(cfg.output_dir) / "finn_tmp").absolute()
    status = build_dataflow_cfg(str(onnx_path), cfg)
    if status != 0:
        log = Path(cfg.output_dir) / "build_dataflow.log"
        text = log.read_text() if log.exists() else ""
        mapped = [line.strip() for line in text.splitlines() if "could not map" in line]
        if mapped:
            raise UnmappedNodeError(" ".join(text[text.index("could not map"):].split("\n")[0:1]) or mapped[-1])
        raise RuntimeError(f"FINN+ build of {onnx_path} failed (status {status}); see {log}:\n{text[-3000:]}")


def read_estimates(output_dir, board: dict) -> dict:
    """A build's figures, read as the search reads them (:func:`twindnn.hardware.estimate.read_reports`)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from .estimate import read_reports

    output_dir = Path(output_dir)
    model = ModelWrapper(str(output_dir / "intermediate_models" / "step_generate_estimate_reports.onnx"))
    out = read_reports(output_dir / "report", board["clock_mhz"], model, board["part"])
    scale_file = output_dir / "report" / "host_output_scale.json"
    out["host_output"] = json.loads(scale_file.read_text()) if scale_file.exists() else None
    return out
