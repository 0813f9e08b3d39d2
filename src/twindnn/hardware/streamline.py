"""This repository's own FINN+ build steps: streamlining for residual networks, and the check that
every node is mapped to a hardware layer (:data:`CUSTOM_STEPS`, used by the front end in
:mod:`twindnn.hardware.finn_build`).

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
from pathlib import Path

from finn.transformation.fpgadataflow.convert_to_hw.global_acc_pool import InferGlobalAccPoolLayer
from finn.transformation.streamline import Streamline, absorb, reorder
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
from qonnx.transformation.make_input_chanlast import MakeInputChannelsLast

from .finn_env import UnmappedNodeError


def step_residual_streamline(model, cfg):
    """Streamlining for ResNets: scales move past forks, then past adds, then into thresholds.

    Also: the input becomes NHWC (what the accelerator streams), the global average pool
    becomes FINN's GlobalAccPool with its 1/(H*W) scale absorbed into the next thresholds,
    and the classifier's trailing float scale is handed to the host (see ``host_output_scale.json``).
    """
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
    for node in model.get_nodes_by_op_type("Im2Col"):
        inst = getCustomOp(node)
        if inst.get_nodeattr("pad_value") == -1 and model.get_tensor_datatype(node.input[0]) == DataType["BINARY"]:
            inst.set_nodeattr("pad_value", 0)
    return model


def _reshape(model):
    """Shapes (of tensors whose value_info was removed) and datatypes again; orphans dropped."""
    model = model.transform(RemoveUnusedTensors())
    return model.transform(InferShapes()).transform(InferDataTypes())


def _transposes_to_edges(model, max_rounds=6):
    """Cancel the layout Transposes that lowering puts around every conv, through forks and adds.

    Without this each one becomes a FINN Shuffle layer (real hardware and latency)."""

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


CUSTOM_STEPS = {"step_residual_streamline": step_residual_streamline, "step_check_all_mapped": step_check_all_mapped}
