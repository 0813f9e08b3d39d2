"""The design-space search on small dataflow graphs made here, node by node (FINN+ estimates, no
training): DSP lanes of RTL matrix units, weight streams over 8191 bits, a ladder that goes on past
a rung that does not fit, honest limit labels, threshold memories out of LUTRAM, and the searched
designs equal to the build's figures."""
import json

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

from twindnn.hardware import estimate, search
from twindnn.hardware.boards import load_board
from twindnn.hardware.estimate import EstimatePath
from twindnn.hardware.finn_build import build_network

UTIL = 0.85
DOMAIN = "finn.custom_op.fpgadataflow"


def dataflow_graph(path, vectors: int, channels: int, in_dtype: str, layers: list[tuple], seed: int = 0):
    """A chain of FINN HW layers on ``vectors`` input vectors of ``channels`` values:
    ``("mvau", MH, weight type, xnor)`` (no activation: it outputs accumulators) or
    ``("thresholds", steps, output type)`` (INT16 thresholds over the full range)."""
    rng = np.random.default_rng(seed)
    nodes, value_info, inits = [], [], {}
    cur, dtypes = "x", {"x": DataType[in_dtype]}
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, vectors, channels])
    for i, layer in enumerate(layers):
        out = f"t{i}"
        if layer[0] == "mvau":
            _, mh, wdt, xnor = layer
            wdt = DataType[wdt]
            w = rng.integers(wdt.min(), wdt.max() + 1, (channels, mh)).astype(np.float32)
            w.flat[0], w.flat[1] = wdt.min(), wdt.max()  # full range: bit-width minimization keeps the type
            inits[f"w{i}"] = (w, wdt)
            acc = DataType["UINT32" if xnor else "INT32"]
            nodes.append(helper.make_node(
                "MVAU", [cur, f"w{i}"], [out], domain=DOMAIN, backend="fpgadataflow", name=f"MVAU_{i}", MW=channels,
                MH=mh, SIMD=1, PE=1, inputDataType=dtypes[cur].name, weightDataType=wdt.name, outputDataType=acc.name,
                ActVal=0, binaryXnorMode=int(xnor), noActivation=1, numInputVectors=[1, vectors],
                mem_mode="internal_decoupled"))
            channels, dtypes[out] = mh, acc
        else:
            _, steps, odt = layer
            lo, hi = -(2**15), 2**15 - 1
            t = np.sort(rng.integers(lo, hi, (channels, steps)), axis=1).astype(np.float32)
            t[0, 0], t[0, -1] = lo, hi
            inits[f"th{i}"] = (t, DataType["INT16"])
            nodes.append(helper.make_node(
                "Thresholding", [cur, f"th{i}"], [out], domain=DOMAIN, backend="fpgadataflow", name=f"Thresholding_{i}",
                NumChannels=channels, PE=1, numSteps=steps, inputDataType=dtypes[cur].name, weightDataType="INT16",
                outputDataType=odt, ActVal=0, numInputVectors=[1, vectors]))
            dtypes[out] = DataType[odt]
        value_info.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, vectors, channels]))
        cur = out
    model = ModelWrapper(qonnx_make_model(helper.make_graph(nodes, "g", [inp], value_info[-1:],
                                                            value_info=value_info[:-1])))
    for name, (arr, dt) in inits.items():
        model.set_initializer(name, arr)
        model.set_tensor_datatype(name, dt)
    for name, dt in dtypes.items():
        model.set_tensor_datatype(name, dt)
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graphs")
    return {
        # 8-bit weights and activations: an RTL matrix unit on the ZCU104's DSP48E2s (2 lanes per DSP)
        "rtl": dataflow_graph(tmp / "rtl.onnx", 64, 64, "UINT8", [("mvau", 64, "INT8", False)]),
        # binary weights, 1152 per output channel: PE 8 is a 9216-bit weight stream
        "wide": dataflow_graph(tmp / "wide.onnx", 16, 1152, "BINARY", [("mvau", 16, "BINARY", True)]),
        # 12 x 1024 8-bit weights: SIMD 3 takes 8 BRAMs, SIMD 2 and 4 take 6 (FINN+'s BRAM model)
        "bram": dataflow_graph(tmp / "bram.onnx", 1, 12, "UINT8", [("mvau", 1024, "INT8", False)]),
        # 8-bit activations: 255 thresholds per channel, in LUTRAM by default
        "thresholds": dataflow_graph(tmp / "thr.onnx", 64, 64, "INT16",
                                     [("thresholds", 255, "UINT8"), ("mvau", 64, "INT8", False)]),
    }


def shrunk(board: dict, **caps) -> dict:
    """``board`` with the budgets ``caps`` (what a design may use at UTIL)."""
    return {**board, "resources": {**board["resources"], **{r: v / UTIL for r, v in caps.items()}}}


def fastest_fitting(designs, board):
    fitting = designs[[search.fits(r, board, UTIL) for _, r in designs.iterrows()]]
    return fitting.sort_values(["max_cycles", "target_fps"]).iloc[0]


def only(folding: dict, prefix: str) -> dict:
    return next(attrs for name, attrs in folding.items() if name.startswith(prefix))


def test_rtl_matrix_units_pair_dsp_lanes(graphs):
    """SetFolding leaves an RTL MVAU at PE 1 (one 8x8 product per DSP); the search halves its DSPs
    at the same cycles by PE 2 with SIMD halved."""
    board = load_board("ZCU104")
    path = EstimatePath(graphs["rtl"], board)
    plain_folding = path.fold(20_000, 8191)
    plain = path.evaluate(plain_folding)
    assert only(plain_folding, "MVAU_rtl")["PE"] == 1  # what FINN gives
    designs, foldings, _ = search.search_network(path, "rtl", board, UTIL, fps_start=20_000, fps_factor=2,
                                                 mvau_wwidth_max=8191, refine_steps=0, max_rungs=1)
    row, folding = designs.iloc[0], only(foldings[0], "MVAU_rtl")
    assert row["max_cycles"] <= plain["max_cycles"] and row["DSP"] < plain["DSP"]
    assert row["DSP"] == plain["DSP"] / 2
    assert folding["PE"] % 2 == 0 and 64 % folding["PE"] == 0 and 64 % folding["SIMD"] == 0
    assert "DSP lanes paired: MVAU_rtl_0 PE 1->2" in row["folding_changes"]
    off, _, _ = search.search_network(path, "rtl", board, UTIL, fps_start=20_000, fps_factor=2, mvau_wwidth_max=8191,
                                      refine_steps=0, max_rungs=1, dsp_pairing=False)
    assert off.iloc[0]["DSP"] == plain["DSP"] and not off.iloc[0]["folding_changes"]


def _at_maximum_parallelism(path, folding, layer: str) -> bool:
    """Whether a matrix unit or thresholding layer is as parallel as FINN allows (checked here,
    independently of the search's own rule)."""
    node = next(n for n in path.specialized.graph.node if n.name == layer)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type.startswith("MVAU"):
        return folding[layer]["PE"] == attrs["MH"] and folding[layer]["SIMD"] == attrs["MW"]
    if node.op_type.startswith("Thresholding"):
        return folding[layer]["PE"] == attrs["NumChannels"]
    raise AssertionError(f"no rule for {node.op_type}")


def test_weight_stream_over_8191_bits_gets_past_the_revert(graphs):
    """SetFolding reverts PE 8 -> 4 (a 9216-bit weight stream); with the layer's weights embedded
    the search reaches PE 16, four times fewer cycles, and says which layer moved and why."""
    board = load_board("ZCU104")
    path = EstimatePath(graphs["wide"], board, mac="lut")
    start = board["clock_mhz"] * 1e6 / 64  # first rung: 64 cycles, met at PE 4; the next one needs PE 16
    capped, _, capped_limit = search.search_network(path, "wide", board, UTIL, start, 4, 8191, refine_steps=0,
                                                    max_rungs=4, stream_cap=False)
    designs, foldings, limit = search.search_network(path, "wide", board, UTIL, start, 4, 8191, refine_steps=0,
                                                     max_rungs=4)
    before, after = fastest_fitting(capped, board), fastest_fitting(designs, board)
    assert before["max_cycles"] == 64 and after["max_cycles"] == 16
    folding = foldings[int(after["design"])]["MVAU_hls_0"]
    assert folding["mem_mode"] == "internal_embedded" and folding["PE"] == 16
    assert "MVAU_hls_0 weight stream 9216 > 8191 bits at PE 8" in after["folding_changes"]
    assert after["placement"].endswith("; weights of 1 matrix unit(s) embedded in the HLS kernel (weight stream cap)")
    # the labels: held back by the cap without the fix; fully unfolded with it
    assert capped_limit.startswith("held back: MVAU_hls_0 at 64 cycles (weight stream 9216 > 8191 bits"), capped_limit
    assert limit.startswith("fully unfolded (slowest layer MVAU_hls_0: 16 cycles"), limit


@pytest.mark.parametrize("graph,mac,stream_cap", [("wide", "lut", False), ("wide", "lut", True), ("rtl", "auto", True),
                                                  ("thresholds", "auto", True)])
def test_fully_unfolded_only_at_maximum_parallelism(graphs, graph, mac, stream_cap):
    """Run to saturation: a "fully unfolded" label always names a design whose slowest layers
    are at their maximum parallelism, and the slowest layer it names is the design's."""
    base = load_board("ZCU104")
    board = shrunk(base, LUT=1e7, DSP=1e5, BRAM_18K=1e5, URAM=1e4)  # everything fits: the search saturates
    path = EstimatePath(graphs[graph], base, mac=mac)
    designs, foldings, limit = search.search_network(path, graph, board, UTIL, 10_000, 16, 8191, refine_steps=0,
                                                     max_rungs=8, stream_cap=stream_cap)
    best = fastest_fitting(designs, board)
    design = path.evaluate(foldings[int(best["design"])])
    slowest = [lay["layer"] for lay in design["layers"] if lay["cycles"] == max(x["cycles"] for x in design["layers"])]
    assert best["bottleneck_layer"] in slowest and best["bottleneck_cycles"] == best["max_cycles"]
    at_max = all(_at_maximum_parallelism(path, foldings[int(best["design"])], lay) for lay in slowest)
    assert limit.startswith("fully unfolded") == at_max, (limit, slowest)
    if limit.startswith("fully unfolded"):
        assert f"slowest layer {best['bottleneck_layer']}: {best['max_cycles']} cycles" in limit
    else:
        assert limit.startswith("held back: ") and not stream_cap


def test_ladder_goes_past_a_rung_that_does_not_fit(graphs):
    """FINN+'s BRAM packing is not monotone in SIMD: SIMD 3 (8 BRAMs) does not fit in 7, SIMD 4
    (6 BRAMs, faster) does. The ladder goes on past the SIMD 3 rung and finds SIMD 4."""
    base = load_board("ZCU104")
    board = shrunk(base, LUT=1000, DSP=10, BRAM_18K=7, URAM=0)  # SIMD 6 needs 1043 LUTs
    path = EstimatePath(graphs["bram"], base, mac="lut")
    clock = base["clock_mhz"] * 1e6
    designs, foldings, limit = search.search_network(path, "bram", board, UTIL, clock / 6144, 1.25, 8191,
                                                     refine_steps=2, max_rungs=6)
    fit = [search.fits(r, board, UTIL) for _, r in designs.iterrows()]
    best = fastest_fitting(designs, board)
    assert best["max_cycles"] == 3072 and only(foldings[int(best["design"])], "MVAU")["SIMD"] == 4
    slower_failing = designs[~np.array(fit) & (designs["target_fps"] < best["target_fps"]).to_numpy()]
    assert len(slower_failing) and (slower_failing["max_cycles"] == 4096).all()  # the SIMD 3 rung, kept as a row
    assert (slower_failing["BRAM_18K"] == 8).all()
    assert limit.startswith("resources: the next faster design needs LUT 1043 > 1000"), limit  # SIMD 6


def test_threshold_placement_moves_thresholds_out_of_lutram(graphs):
    base = load_board("ZCU104")
    path = EstimatePath(graphs["thresholds"], base)
    plain = path.evaluate(path.fold(20_000, 8191))
    thresholds = next(lay for lay in plain["layers"] if lay["op_type"] == "Thresholding_rtl")
    assert thresholds["LUT"] > 0.9 * plain["LUT"]  # 255 thresholds per channel, in LUTRAM
    for kind, res, caps in (("BRAM", "BRAM_18K", {"LUT": plain["LUT"] / 2}),
                            ("URAM", "URAM", {"LUT": plain["LUT"] / 2, "BRAM_18K": 10})):  # no BRAM left
        board = shrunk(base, **caps)
        designs, foldings, _ = search.search_network(path, "thr", board, UTIL, 20_000, 2, 8191, refine_steps=0,
                                                     max_rungs=1)
        unplaced, placed = designs.iloc[0], designs.iloc[-1]
        assert not search.fits(unplaced, board, UTIL) and search.fits(placed, board, UTIL), kind
        assert placed["placement"] == f"thresholds: 1 to {kind}"
        assert placed["LUT"] < unplaced["LUT"] and placed[res] > unplaced[res]
        assert placed["max_cycles"] == unplaced["max_cycles"]
        attrs = only(foldings[int(placed["design"])], "Thresholding_rtl")
        assert attrs["depth_trigger_bram"] > 0
        assert (attrs["depth_trigger_uram"] == attrs["depth_trigger_bram"]) == (kind == "URAM")
        off, _, _ = search.search_network(path, "thr", board, UTIL, 20_000, 2, 8191, refine_steps=0, max_rungs=1,
                                          threshold_placement=False)
        assert len(off) == 1 and not search.fits(off.iloc[0], board, UTIL)


def test_searched_designs_equal_the_build(graphs, tmp_path):
    """Depth triggers, paired DSP lanes and embedded weights travel in the folding config: FINN+'s
    builder gives the searched figures."""
    base = load_board("ZCU104")
    path = EstimatePath(graphs["thresholds"], base)
    board = shrunk(base, LUT=path.evaluate(path.fold(20_000, 8191))["LUT"] / 2)
    designs, foldings, _ = search.search_network(path, "thr", board, UTIL, 20_000, 2, 8191, refine_steps=0,
                                                 max_rungs=1)
    placed = designs.iloc[-1]
    assert placed["placement"].startswith("thresholds") and "DSP lanes paired" in placed["folding_changes"]
    wide = EstimatePath(graphs["wide"], base, mac="lut")
    wide_designs, wide_foldings, _ = search.search_network(wide, "wide", base, UTIL, base["clock_mhz"] * 1e6 / 16, 4,
                                                           8191, refine_steps=0, max_rungs=1)
    embedded = wide_designs.iloc[0]
    assert "internal_embedded" in embedded["folding_changes"]
    for i, (graph, mac, row, folding) in enumerate(((graphs["thresholds"], "auto", placed, foldings[-1]),
                                                    (graphs["wide"], "lut", embedded, wide_foldings[0]))):
        (tmp_path / f"f{i}.json").write_text(json.dumps(folding))
        built = build_network(graph, tmp_path / f"b{i}", base, tmp_path / f"f{i}.json", mac=mac)
        for key in ("LUT", "DSP", "BRAM_18K", "URAM", "max_cycles"):
            assert built[key] == row[key], (i, key, built[key], row[key])


def _widths(model) -> dict:
    """Every tensor's FINN datatype and every node's weight/accumulator/output datatype attribute."""
    widths = {t: model.get_tensor_datatype(t).name for n in model.graph.node for t in list(n.input) + list(n.output)}
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name.endswith("DataType"):
                widths[f"{node.name}.{attr.name}"] = attr.s.decode()
    return widths


def test_minimized_widths_reused_only_across_what_finn_does_not_read(graphs):
    """The search reuses step_minimize_bit_width across foldings with one minimize_key: RAM styles,
    internal mem_modes and PE/SIMD give the widths a fresh minimization gives; weights written at
    run time get their own key."""
    board = load_board("ZCU104")
    path = EstimatePath(graphs["thresholds"], board)
    folding = path.fold(20_000, 8191)
    mvau = next(name for name in folding if name.startswith("MVAU"))
    variants = []
    for attrs in ({"ram_style": "block"}, {"mem_mode": "internal_embedded"}, {"PE": 1, "SIMD": 1},
                  {"runtime_writeable_weights": 1}):
        changed = json.loads(json.dumps(folding))
        changed[mvau].update(attrs)
        variants.append(changed)
    reused = _widths(path.minimized(folding))
    for changed in variants[:3]:
        assert estimate.minimize_key(changed) == estimate.minimize_key(folding)
        fresh = EstimatePath(graphs["thresholds"], board)
        assert _widths(fresh.minimized(changed)) == _widths(path.minimized(changed)) == reused
    assert estimate.minimize_key(variants[3]) != estimate.minimize_key(folding)


def test_whole_array_datatype_checks_give_finn_plus_own_answers(graphs):
    """prepare_finn gives FINN+'s threshold and matrix-unit modules whole-array datatype checks: the
    same boolean arrays as np.vectorize element by element, and the same minimized widths and
    estimates as FINN+ without them."""
    from qonnx.core.datatype import DataType

    from twindnn.hardware import finn_env

    rng = np.random.default_rng(0)
    # near the bounds of wide types too: in float32, 2**25 - 1 (INT26's max) rounds to 2**25
    edges = [2**24 - 1, 2**24, 2**25 - 1, 2**25, -(2**25) - 1, 2**31 - 1, 2**31, -(2**31) - 1]
    values = np.concatenate([rng.integers(-300, 300, 200).astype(np.float32), [0.5, -1.0, 1.0, 127, -128, 128,
                                                                                np.nan, np.inf], edges])
    calls = []
    for name in ("INT8", "UINT4", "BIPOLAR", "TERNARY", "BINARY", "INT26", "UINT25", "INT32", "FIXED<8,4>",
                 "FLOAT32"):
        dt = DataType[name]
        spy = type(dt.allowed)(lambda self, v: calls.append(np.shape(v)) or type(self).allowed(self, v), dt)
        spy.__func__.__name__ = "allowed"
        whole = finn_env._WHOLE_ARRAY_NUMPY.vectorize(spy)
        for array in (values, values.reshape(27, 8), values.astype(np.float64), np.array(3.0),
                      values[:200].astype(np.int64)):
            expected = np.vectorize(dt.allowed)(array)
            calls.clear()
            assert np.array_equal(whole(array), expected), (name, array.shape, array.dtype)
            if array.dtype.kind == "f":
                assert calls == [array.shape], (name, calls[:3])  # one call, on the whole array
    assert finn_env._WHOLE_ARRAY_NUMPY.vectorize(len)(np.array(["ab", "c"], dtype=object)).tolist() == [2, 1]

    board = load_board("ZCU104")
    ours = {}
    for graph in ("thresholds", "rtl"):
        path = EstimatePath(graphs[graph], board)  # prepare_finn has run: the checks are in place
        folding = path.fold(20_000, 8191)
        ours[graph] = (_widths(path.minimized(folding)), path.evaluate(folding), folding)
    import finn.custom_op.fpgadataflow.thresholding as thresholding

    assert thresholding.np is finn_env._WHOLE_ARRAY_NUMPY
    assert set(finn_env.whole_array_checks(False)) == set(finn_env.WHOLE_ARRAY_CHECK_MODULES)
    try:
        assert thresholding.np is np
        for graph, (widths, figures, folding) in ours.items():
            plain = EstimatePath(graphs[graph], board)
            assert _widths(plain.minimized(folding)) == widths
            assert plain.evaluate(folding) == figures
    finally:
        finn_env.whole_array_checks(True)


def test_a_folding_evaluated_again_is_not_built_again(graphs, monkeypatch):
    """EstimatePath.evaluate keeps the figures of each folding: a rung that SetFolding answers with
    a folding it gave before costs no second estimate build, and its figures are the first's
    (a copy: the caller may change it)."""
    path = EstimatePath(graphs["rtl"], load_board("ZCU104"))  # prepares FINN+ first
    import finn.builder.build_dataflow_steps as steps

    calls = []
    real = steps.step_generate_estimate_reports
    monkeypatch.setattr(steps, "step_generate_estimate_reports", lambda *a: calls.append(1) or real(*a))
    folding = path.fold(20_000, 8191)
    first = path.evaluate(folding)
    first["max_cycles"] = -1
    again = path.evaluate(json.loads(json.dumps(folding)))
    assert len(calls) == 1 and again["max_cycles"] > 0
    slower = path.fold(2_000, 8191)
    assert slower != folding
    path.evaluate(slower)
    assert len(calls) == 2
