"""Skip-connection FIFOs of a folded residual network, estimated from FINN's per-node cycle
estimates, not sized by simulation.

FINN+'s estimate build (``step_specialize_layers``, ``step_apply_folding_config``,
``step_minimize_bit_width``, ``step_generate_estimate_reports``) inserts and sizes no FIFO:
finn-plus 1.6.1 sizes them only by RTL simulation (``live_fifo``, ``distributed_sim``), which this
estimate-only set-up cannot run. The FIFOs that matter for the resource budget are the
skip-connection ones: a ``DuplicateStreams`` node forks a stream into a long branch (sliding
windows, matrix units, thresholds) and a short one (the identity or a 1x1 projection) that meet
again at an add (``AddStreams_hls``, ``ElementwiseAdd_hls``, ...). The short branch has to hold
what the fork emits while the long branch has not yet produced its first matching output.
:func:`skip_fifos` estimates that FIFO for every fork/join pair; :func:`fifo_totals` sums the rows
in the resource keys of :data:`twindnn.hardware.boards.RESOURCES`.

The estimate, and what it assumes
---------------------------------
- **Cycles.** Every number comes from FINN's own per-node estimate ``get_exp_cycles()``: the
  cycles a node takes for one frame at its folding (what ``estimate_layer_cycles.json`` reports).
  No node is simulated.
- **Frame time at a node.** A node cannot finish a frame faster than its input arrives: the frame
  time at a node is the largest ``get_exp_cycles()`` of the node and everything upstream of it (a
  start-up view: FIFOs still empty, the input fed as fast as the design takes it, which is also
  what a simulation-based sizing with large FIFOs watches). The fork's words are taken to come
  evenly over the frame time at the fork.
- **Branch latency: time to the first output, not FINN's critical path.** FINN's own latency
  measure (``finn.analysis.fpgadataflow.dataflow_performance``, ``critical_path_cycles``) adds the
  whole-frame cycles of the nodes on a path; its docstring calls it very pessimistic (no overlap
  between nodes), and it ignores the pace at which a branch's input arrives. It is reported beside
  the estimate (``long_branch_path_cycles``), not used. The branch latency used is the time from the
  fork's first word to the branch's first word at the join, found by following the data a word
  depends on (:func:`words_needed`, back along the branch to the fork) and the time each step
  takes (forward): a node has emitted its first ``q`` words once the input they need has arrived
  plus one output word at its own pace (``get_exp_cycles() / output words``), and no sooner than its
  own pace allows from its first input (``get_exp_cycles()`` spread evenly over its input and its
  output words). The input a node needs: a sliding-window generator (``ConvolutionInputGenerator*``)
  every pixel up to the last of the output pixel's window ((K_h - 1) dilated rows plus K_w pixels of
  its padded input for the first one); padding (``FMPadding*``) the real pixels before the padded
  position (none for the top padding row); a matrix, vector or pool unit (``MVAU*``, ``VVAU*``,
  ``Pool*``) one whole input vector per output pixel; a global pool (``GlobalAccPool*``,
  ``LabelSelect*``) the whole frame; any other node the same share of its input as of its output.
  A stream whose word width changes between two nodes without a converter (the estimate build
  inserts none) is counted in each side's own words.
- **Depth.** ceil((long-branch latency - short-branch latency) / (cycles per word at the fork)),
  where the cycles per word are the frame time at the fork over the words of one frame on the
  fork's output; at least 2 (the smallest FIFO ``fifo.sv`` builds) and at most one frame of that
  stream (a deeper FIFO only lets the fork run ahead into the next frame). A branch slower than the
  fork also makes the backlog grow after the first output; that growth only holds the fork back to
  a rate the slower branch imposes anyway, and it is not counted.
- **Where and how wide.** The FIFO sits on the short branch, at the fork's output, with the fork's
  folded output shape and datatype (``get_folded_output_shape()``, ``get_outstream_width()``).
  Branches are chains (a node on a branch with a second consumer is refused). A fork with more
  than two outputs gets a FIFO on every branch but the longest.
- **Cost.** FINN's own StreamingFIFO resource model: the node FINN would build, a
  ``StreamingFIFO_rtl`` with ``impl_style="rtl"`` (``InsertFIFO`` then ``SpecializeLayers``) and
  ``ram_style="auto"`` (``InsertFIFO``'s default; ``fifo.sv`` picks srl, distributed, block or
  ultra by depth and width, see ``StreamingFIFO.resolve_ram_style``), estimated with its
  ``lut_estimation``, ``bram_estimation`` and ``uram_estimation``; no DSP. ``mem_style`` pins the
  FIFOs the RTL would back with BRAM or URAM, as the build's ``large_fifo_mem_style`` does
  (``"block"`` on parts whose URAM is spoken for or absent: FINN's model reports the URAM asked
  for, whether or not the part has any).
"""

from __future__ import annotations

import math

import numpy as np
from finn.custom_op.fpgadataflow.rtl.streamingfifo_rtl import StreamingFIFO_rtl
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from .boards import RESOURCES

FORK_OPS = ("DuplicateStreams",)
MIN_DEPTH = 2  # fifo.sv elaborates no FIFO shallower than this (StreamingFIFO_rtl.generate_hdl)
MEM_STYLES = ("auto", "block", "distributed", "ultra")  # LargeFIFOMemStyle's values
_WINDOW_OPS = ("ConvolutionInputGenerator",)
_PADDING_OPS = ("FMPadding",)
_VECTOR_OPS = ("MVAU", "VVAU", "Pool")
_FRAME_OPS = ("GlobalAccPool", "LabelSelect")


def _words(shape) -> int:
    """Stream words of one frame of a folded shape (all but the innermost, parallel dimension)."""
    return int(np.prod(shape[:-1]))


def words_needed(node, inst, ind: int, q: int) -> int:
    """The input words ``node`` must have received on input ``ind`` before it has emitted ``q`` output words.

    Sliding windows: every input pixel up to the last one of the window of the output pixel that word
    ``q`` belongs to; padding: the real input pixels that come before the padded position; matrix, vector
    and pool units: whole input vectors, one per output pixel; global pools: the whole frame; any other
    node: the same share of its input as of its output.
    """
    fin, fout = inst.get_folded_input_shape(ind), inst.get_folded_output_shape()
    n_in, n_out = _words(fin), _words(fout)
    if q <= 0:
        return 0
    op = node.op_type
    if op.startswith(_WINDOW_OPS):
        kh, kw = inst.get_nodeattr("ConvKernelDim")
        ih, iw = inst.get_nodeattr("IFMDim")
        oh, ow = inst.get_nodeattr("OFMDim")
        sh, sw = inst.get_nodeattr("Stride")
        dh, dw = inst.get_nodeattr("Dilation")
        in_wpp, out_wpp = n_in // max(1, ih * iw), max(1, n_out // max(1, oh * ow))
        oy, ox = divmod((q - 1) // out_wpp, ow)
        last = (oy * sh + (kh - 1) * dh) * iw + ox * sw + (kw - 1) * dw
        return min(n_in, (last + 1) * in_wpp)
    if op.startswith(_PADDING_OPS):
        ih, iw = inst.get_nodeattr("ImgDim")
        top, left = inst.get_nodeattr("Padding")[:2]
        oh, ow = inst.get_padded_odim()
        in_wpp, out_wpp = n_in // max(1, ih * iw), max(1, n_out // max(1, oh * ow))
        py, px = divmod((q - 1) // out_wpp, ow)
        pixels = min(max(py - top, 0), ih) * iw
        if top <= py < top + ih:
            pixels += min(max(px - left + 1, 0), iw)
        return min(n_in, pixels * in_wpp)
    if op.startswith(_VECTOR_OPS) and len(fin) >= 2:
        vectors = max(1, n_in // max(1, int(fin[-2])))
        out_per_vector = max(1, n_out // vectors)
        return min(n_in, ((q - 1) // out_per_vector + 1) * int(fin[-2]))
    if op.startswith(_FRAME_OPS):
        return n_in
    return min(n_in, math.ceil(q * n_in / max(1, n_out)))


class _Graph:
    """The cycle figures of a folded dataflow graph that the FIFO estimate needs."""

    def __init__(self, model):
        self.model = model
        self.nodes = {n.name: n for n in model.graph.node}
        self.inst = {n.name: getCustomOp(n) for n in model.graph.node}
        self.cycles = {name: int(inst.get_exp_cycles()) for name, inst in self.inst.items()}
        producer = {t: n for n in model.graph.node for t in n.output}
        self.preds = {n.name: [producer[t] for t in n.input if t in producer] for n in model.graph.node}
        self.frame = {}  # frame time at a node's output: its own cycles or anything upstream's, the larger
        pending = list(model.graph.node)
        while pending:  # in dependency order, whatever order the graph lists its nodes in
            ready = [n for n in pending if all(p.name in self.frame for p in self.preds[n.name])]
            if not ready:
                raise ValueError("the dataflow graph has a cycle")
            for n in ready:
                upstream = [self.frame[p.name] for p in self.preds[n.name]]
                self.frame[n.name] = float(max([self.cycles[n.name], *upstream]))
            pending = [n for n in pending if n.name not in self.frame]

    def branch_cycles(self, chain, tensor: str, per_word: float, fork_words: int) -> float:
        """Cycles from the fork's first word on ``tensor`` to the first word ``chain`` emits (0: no node).

        The fork's ``fork_words`` words of a frame come every ``per_word`` cycles. A node has emitted its
        first ``q`` words one output word after the input they need (:func:`words_needed`) has arrived,
        and no sooner than its own pace allows (its ``get_exp_cycles()`` spread evenly over its input
        and its output words, from its first input word on).
        """
        steps, prev = [], tensor
        for node in chain:
            inst = self.inst[node.name]
            ind = list(node.input).index(prev)
            steps.append((node, inst, ind, max(1, _words(inst.get_folded_input_shape(ind))),
                          max(1, _words(inst.get_folded_output_shape())), float(self.cycles[node.name])))
            prev = node.output[0]
        memo: dict[tuple[int, int], float] = {}

        def emitted(i: int, q: int) -> float:  # when step i (-1: the fork) has emitted q words
            if q <= 0:
                return 0.0
            if i < 0:
                return (q - 1) * per_word
            if (i, q) not in memo:
                node, inst, ind, n_in, n_out, cycles = steps[i]
                need = words_needed(node, inst, ind, q)
                # in the producer's words: a stream whose width changes without a converter (the
                # estimate build inserts none) counts the same frame in other words on either side
                upstream = math.ceil(need * (steps[i - 1][4] if i else fork_words) / n_in)
                start = emitted(i - 1, 1) if need else 0.0
                memo[i, q] = max(emitted(i - 1, upstream) + cycles / n_out,
                                 start + cycles * max(need / n_in, q / n_out))
            return memo[i, q]

        return emitted(len(steps) - 1, 1) if steps else 0.0

    def branch(self, fork, tensor: str) -> tuple[list, object]:
        """(nodes, join) of the branch that starts at the fork's output ``tensor``."""
        chain, current = [], tensor
        while True:
            consumers = self.model.find_consumers(current) or []
            if len(consumers) != 1:
                raise ValueError(f"{fork.name}: the branch through {current!r} has {len(consumers)} consumers, "
                                 "not one (only chains between a fork and its add are supported)")
            node = consumers[0]
            if len(self.preds[node.name]) > 1:
                return chain, node
            if node.op_type.startswith(FORK_OPS) or len(node.output) != 1:
                raise ValueError(f"{fork.name}: {node.name} ({node.op_type}) forks again inside a branch")
            chain.append(node)
            current = node.output[0]


def fifo_node(name: str, inp: str, out: str, depth: int, folded_shape, normal_shape, datatype: str,
              ram_style: str = "auto"):
    """The StreamingFIFO FINN builds for a depth: ``InsertFIFO``'s node, specialized to RTL."""
    return helper.make_node("StreamingFIFO_rtl", [inp], [out], name=name, domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", depth=int(depth), folded_shape=[int(d) for d in folded_shape],
                            normal_shape=[int(d) for d in normal_shape], dataType=datatype, ram_style=ram_style,
                            impl_style="rtl")


def fifo_cost(node, fpga_part: str, mem_style: str = "auto") -> dict:
    """ram_style and FINN's resource estimate of a StreamingFIFO node (``mem_style`` as the build's
    ``large_fifo_mem_style``: it pins only a FIFO left at auto that the RTL backs with BRAM or URAM)."""
    if mem_style not in MEM_STYLES:
        raise ValueError(f"mem_style {mem_style!r}: use one of {', '.join(MEM_STYLES)}")
    inst = StreamingFIFO_rtl(node)
    if mem_style != "auto" and inst.get_nodeattr("ram_style") == "auto" and inst.resolve_ram_style() in (
            "block", "ultra"):
        inst.set_nodeattr("ram_style", mem_style)
    return {"ram_style": inst.get_ram_style(), "LUT": float(inst.lut_estimation(fpga_part)),
            "BRAM_18K": float(inst.bram_estimation(fpga_part)), "URAM": float(inst.uram_estimation(fpga_part)),
            "DSP": 0.0}


def skip_fifos(model, fpga_part: str, mem_style: str = "auto") -> list[dict]:
    """One row per skip FIFO of a folded, specialized FINN graph (see the module docstring).

    Each row: ``fork``, ``join``, ``skip_tensor`` (the fork output the FIFO sits on),
    ``long_branch`` / ``short_branch`` (node names), ``long_branch_cycles`` /
    ``short_branch_cycles`` (first-output latencies), ``long_branch_path_cycles`` (FINN's
    no-overlap path sum), ``fork_cycles_per_word``, ``frame_words``, ``depth`` (stream words),
    ``width_bits``, ``ram_style``, and FINN's StreamingFIFO estimate ``LUT``, ``BRAM_18K``,
    ``URAM``, ``DSP`` (0). A graph without forks gives [].
    """
    if mem_style not in MEM_STYLES:
        raise ValueError(f"mem_style {mem_style!r}: use one of {', '.join(MEM_STYLES)}")
    graph = _Graph(model)
    rows = []
    for fork in model.graph.node:
        if not fork.op_type.startswith(FORK_OPS):
            continue
        inst = graph.inst[fork.name]
        branches = []
        for tensor in fork.output:
            chain, join = graph.branch(fork, tensor)
            branches.append({"tensor": tensor, "nodes": chain, "join": join})
        joins = {b["join"].name for b in branches}
        if len(joins) != 1:
            raise ValueError(f"{fork.name}: its branches end at different nodes {sorted(joins)}")
        folded = [int(d) for d in inst.get_folded_output_shape()]
        frame_words = _words(folded)
        per_word = graph.frame[fork.name] / max(1, frame_words)
        for b in branches:
            b["cycles"] = graph.branch_cycles(b["nodes"], b["tensor"], per_word, frame_words)
        long = max(branches, key=lambda b: b["cycles"])
        path = float(sum(graph.cycles[n.name] for n in long["nodes"]))
        for short in branches:
            if short is long:
                continue
            wanted = math.ceil((long["cycles"] - short["cycles"]) / per_word)
            depth = int(min(max(wanted, MIN_DEPTH), max(frame_words, MIN_DEPTH)))
            node = fifo_node(f"SkipFIFO_{fork.name}", short["tensor"], short["tensor"] + "_fifo", depth, folded,
                             inst.get_normal_output_shape(), inst.get_output_datatype().name)
            rows.append({
                "fork": fork.name, "join": long["join"].name, "skip_tensor": short["tensor"],
                "long_branch": [n.name for n in long["nodes"]], "short_branch": [n.name for n in short["nodes"]],
                "long_branch_cycles": float(long["cycles"]), "short_branch_cycles": float(short["cycles"]),
                "long_branch_path_cycles": path, "fork_cycles_per_word": float(per_word),
                "frame_words": frame_words, "depth": depth, "width_bits": int(inst.get_outstream_width()),
                "folded_shape": folded, "dataType": inst.get_output_datatype().name,
                **fifo_cost(node, fpga_part, mem_style),
            })
    return rows


def fifo_totals(rows: list[dict]) -> dict:
    """The FIFOs' resources summed (the keys of :data:`RESOURCES`), their deepest depth and their count."""
    out = {r: float(sum(row[r] for row in rows)) for r in RESOURCES}
    out["fifo_depth_max"] = int(max((row["depth"] for row in rows), default=0))
    out["fifos"] = len(rows)
    return out
