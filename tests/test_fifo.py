"""Skip-connection FIFOs of a folded toy ResNet (8-bit, one block per stage), estimated from FINN's
per-node cycles (:mod:`twindnn.hardware.fifo`)."""
import copy
import math

import pytest
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from test_hardware_finn import DATA_META, _images, _trained_original  # tests/ is no package: pytest's own name
from twindnn.hardware.boards import RESOURCES, load_board
from twindnn.hardware.estimate import EstimatePath
from twindnn.hardware.export import export_qonnx_model, quantize_original
from twindnn.hardware.fifo import fifo_totals, skip_fifos, words_needed
from twindnn.hardware.finn_build import prepare_network

BOARD = "ZCU104"
TARGET_FPS = 1000
FAST_FPS = 100_000  # SetFolding's fastest foldings here: the last block's branches need a whole frame


def _folded(path: EstimatePath, folding: dict):
    """The model ``EstimatePath.evaluate`` reports on: the estimate steps up to the estimate reports."""
    from finn.builder.build_dataflow_steps import (  # needs prepare_finn() first (EstimatePath did it)
        step_apply_folding_config,
        step_minimize_bit_width,
    )

    cfg = path._folding_cfg(folding)
    model = step_apply_folding_config(copy.deepcopy(path.specialized), cfg)
    model = step_minimize_bit_width(model, cfg)
    return step_apply_folding_config(model, cfg)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fifo")
    _, ckpt = _trained_original(tmp, seed=0)
    images, _ = _images(64, seed=1)
    quant, _ = quantize_original(ckpt, 8, 8, images)
    onnx_path = export_qonnx_model(quant, DATA_META, tmp / "original.onnx")
    board = load_board(BOARD)
    path = EstimatePath(prepare_network(onnx_path, tmp / "original"), board)
    folding = path.fold(TARGET_FPS, 8191)
    model = _folded(path, folding)
    fast = _folded(path, path.fold(FAST_FPS, 8191))
    return {"board": board, "path": path, "folding": folding, "model": model,
            "rows": skip_fifos(model, board["part"]), "fast_model": fast, "fast_rows": skip_fifos(fast, board["part"])}


def _by_fork(rows):
    return {r["fork"]: r for r in rows}


def test_one_fifo_per_residual_add_with_a_fork(toy):
    model, rows = toy["model"], toy["rows"]
    adds = [n for n in model.graph.node if n.op_type.startswith(("AddStreams", "ElementwiseAdd"))
            and len(model.find_direct_predecessors(n) or []) == 2]  # the residual adds: two streams in
    forks = [n for n in model.graph.node if n.op_type.startswith("DuplicateStreams")]
    assert len(forks) == 4 and len(adds) == 4  # one residual block per stage
    assert sorted(r["join"] for r in rows) == sorted(n.name for n in adds)
    assert sorted(r["fork"] for r in rows) == sorted(n.name for n in forks)
    for r in rows:
        # the long branch holds the two 3x3 convolutions, the short one the projection
        assert sum(n.startswith("MVAU") for n in r["long_branch"]) == 2
        assert sum(n.startswith("MVAU") for n in r["short_branch"]) == 1
        assert r["skip_tensor"] in [t for n in forks if n.name == r["fork"] for t in n.output]


@pytest.mark.parametrize("which", ["", "fast_"])
def test_depth_is_positive_and_at_most_one_frame(toy, which):
    model = toy[f"{which}model"]
    for r in toy[f"{which}rows"]:
        fork = getCustomOp(next(n for n in model.graph.node if n.name == r["fork"]))
        frame = math.prod(fork.get_folded_output_shape()[:-1])
        assert r["frame_words"] == frame
        assert 0 < r["depth"] <= frame, r
        assert r["width_bits"] == fork.get_outstream_width()
        assert r["folded_shape"] == list(fork.get_folded_output_shape())
        assert r["long_branch_cycles"] > r["short_branch_cycles"] >= 0


def test_depth_stops_at_one_frame(toy):
    """The last block's two 3x3 convolutions on a 2x2 map need the fork's whole frame before they emit,
    and a fast fork sends it sooner than they finish: the latency difference asks for more than a frame."""
    last = toy["fast_rows"][-1]
    wanted = math.ceil((last["long_branch_cycles"] - last["short_branch_cycles"]) / last["fork_cycles_per_word"])
    assert wanted > last["frame_words"] and last["depth"] == last["frame_words"]
    assert any(r["width_bits"] > 8 for r in toy["fast_rows"])  # faster forks: wider words


def test_depth_covers_what_the_long_branch_must_see_first(toy):
    """Independent of the cycle figures: each 3x3 convolution of the first block's long branch cannot emit
    before it has seen (K - 1) padded rows and K pixels of its input, more than one row of the map, while
    the short branch (a 1x1 projection) needs one pixel: the FIFO holds at least a row of the fork's map."""
    model, r = toy["model"], toy["rows"][0]
    fork = getCustomOp(next(n for n in model.graph.node if n.name == r["fork"]))
    _, h, w, ch_fold, _ = fork.get_folded_output_shape()
    assert r["depth"] >= w * ch_fold
    # and the cycles, by the same measure: depth = latency difference over the fork's cycles per word
    assert r["depth"] == max(2, min(r["frame_words"], math.ceil(
        (r["long_branch_cycles"] - r["short_branch_cycles"]) / r["fork_cycles_per_word"])))


def test_words_needed_follows_the_window(toy):
    model = toy["model"]
    swg = next(n for n in model.graph.node if n.op_type.startswith("ConvolutionInputGenerator")
               and getCustomOp(n).get_nodeattr("ConvKernelDim") == [3, 3]
               and getCustomOp(n).get_nodeattr("Stride") == [1, 1])
    inst = getCustomOp(swg)
    _, ih, iw, fold, _ = inst.get_folded_input_shape()
    assert words_needed(swg, inst, 0, 1) == (2 * iw + 3) * fold  # two padded rows and three pixels
    pad = next(n for n in model.graph.node if n.output[0] == swg.input[0])
    assert pad.op_type.startswith("FMPadding")
    pinst = getCustomOp(pad)
    assert pinst.get_nodeattr("Padding") == [1, 1, 1, 1] and pinst.get_padded_odim() == [ih, iw]
    pad_fold = pinst.get_folded_input_shape()[-2]
    assert words_needed(pad, pinst, 0, 1) == 0  # the top padding row needs no input
    # the window's last padded pixel (row 2, column 2) is the second pixel of the second real row
    assert words_needed(pad, pinst, 0, (2 * iw + 3) * pad_fold) == ((iw - 2) + 2) * pad_fold


def test_depth_grows_when_the_long_branch_is_slower(toy):
    """The same fork folding, the long branch's matrix units folded as slowly as they go: a deeper FIFO."""
    path, rows = toy["path"], _by_fork(toy["rows"])
    fork = next(iter(rows))
    slow = copy.deepcopy(toy["folding"])
    slowed = [n for n in rows[fork]["long_branch"]
              if n.startswith("MVAU") and (slow[n].get("SIMD", 1) > 1 or slow[n].get("PE", 1) > 1)]
    assert slowed, "the first block's convolutions should be folded faster than the slowest folding"
    for n in slowed:
        slow[n].update(SIMD=1, PE=1)
    after = _by_fork(skip_fifos(_folded(path, slow), toy["board"]["part"]))
    assert after[fork]["fork_cycles_per_word"] == rows[fork]["fork_cycles_per_word"]  # the fork as before
    assert after[fork]["long_branch_cycles"] > rows[fork]["long_branch_cycles"]
    assert after[fork]["depth"] > rows[fork]["depth"]


def test_costs_are_finns_streamingfifo_estimates(toy):
    part = toy["board"]["part"]
    styles = set()
    for r in toy["rows"] + toy["fast_rows"]:
        styles.add(r["ram_style"])
        node = helper.make_node("StreamingFIFO_rtl", ["i"], ["o"], domain="finn.custom_op.fpgadataflow.rtl",
                                backend="fpgadataflow", depth=r["depth"], folded_shape=r["folded_shape"],
                                normal_shape=[1], dataType=r["dataType"], ram_style="auto", impl_style="rtl")
        inst = getCustomOp(node)
        assert r["ram_style"] == inst.get_ram_style()
        assert (r["LUT"], r["BRAM_18K"], r["URAM"], r["DSP"]) == (
            inst.lut_estimation(part), inst.bram_estimation(part), inst.uram_estimation(part), 0)
        assert r["LUT"] > 0
    assert {"distributed", "block", "ultra"} <= styles  # the depths span fifo.sv's memory styles
    totals = fifo_totals(toy["rows"])
    assert set(RESOURCES) <= set(totals) and totals["fifos"] == len(toy["rows"])
    for res in RESOURCES:
        assert totals[res] == sum(r[res] for r in toy["rows"])
    assert totals["fifo_depth_max"] == max(r["depth"] for r in toy["rows"])


def test_mem_style_pins_the_memory_backed_fifos(toy):
    part = toy["board"]["part"]
    rows = skip_fifos(toy["model"], part, mem_style="block")
    for auto, pinned in zip(toy["rows"], rows):
        assert pinned["depth"] == auto["depth"]
        if auto["ram_style"] in ("block", "ultra"):
            assert pinned["ram_style"] == "block" and pinned["URAM"] == 0 and pinned["BRAM_18K"] > 0
        else:
            assert pinned["ram_style"] == auto["ram_style"]
    with pytest.raises(ValueError, match="mem_style"):
        skip_fifos(toy["model"], part, mem_style="lutram")


def test_a_graph_without_forks_has_no_skip_fifo(toy):
    model = copy.deepcopy(toy["model"])
    first_fork = next(i for i, n in enumerate(model.graph.node) if n.op_type.startswith("DuplicateStreams"))
    for node in list(model.graph.node)[first_fork:]:
        model.graph.node.remove(node)
    assert len(model.graph.node) > 0
    assert skip_fifos(model, toy["board"]["part"]) == []
    assert fifo_totals([]) == {"LUT": 0.0, "DSP": 0.0, "BRAM_18K": 0.0, "URAM": 0.0, "fifo_depth_max": 0, "fifos": 0}

