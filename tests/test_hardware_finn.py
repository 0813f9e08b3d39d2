"""FINN+ estimate flow on a small trained twin (W1A1) and a small 8-bit original (one block per stage)."""
import io
import json

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from twindnn.config import SearchStage
from twindnn.hardware import colocate as co
from twindnn.hardware import search
from twindnn.hardware.boards import load_board
from twindnn.hardware.estimate import EstimatePath, rtl_mvu_dsps
from twindnn.hardware.export import check_export, export_qonnx_model, quantize_original
from twindnn.hardware.finn_build import build_network, prepare_network
from twindnn.hardware.finn_env import UnmappedNodeError
from twindnn.hardware.optimize import recompute_resources
from twindnn.hardware.streamline import step_check_all_mapped
from twindnn.hardware.tables import budget_violations
from twindnn.models import QuantSpec, build_model, create_twin
from twindnn.steps.fpga import search_step
from twindnn.train import save_checkpoint

# 16 px: the smallest maps (2x2) still take a padded 3x3 conv (qonnx's Im2Col cannot pad a 1x1 map).
DATA_META = {"num_classes": 4, "channels": 1, "image_size": 16, "mean": [0.5], "std": [0.25], "dataset": "toy"}
MODEL_CFG = {"model": "resnet18", "model_kwargs": {"channels": [4, 4, 8, 8], "layers": [1, 1, 1, 1]}}


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.integers(0, 60, (n, 16, 16, 1)).astype(np.uint8)
    for i, y in enumerate(labels):  # a learnable pattern: a bright quadrant per class
        r, c = divmod(int(y), 2)
        images[i, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] += 180
    return images, labels


def _train(model, steps=15):
    images, labels = _images(64)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _trained_original(tmp, seed):
    """A briefly trained original and its checkpoint in ``tmp``."""
    torch.manual_seed(seed)
    original = _train(build_model("original", MODEL_CFG, DATA_META))
    ckpt = tmp / "original.pt"
    save_checkpoint(ckpt, {"state_dict": original.state_dict(),
                           "meta": {"kind": "original", "model_cfg": MODEL_CFG, "data_meta": DATA_META,
                                    "twin_spec": None}})
    return original, ckpt


def networks(prepared):
    return {k: v for k, v in prepared.items() if k in ("twin", "original")}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hw")
    original, ckpt = _trained_original(tmp, seed=0)
    twin = _train(create_twin(original, QuantSpec("w1a1", 1, 1)))
    images, labels = _images(64, seed=1)
    quant, _ = quantize_original(ckpt, 8, 8, images)
    held_out, held_labels = _images(256, seed=3)
    with torch.no_grad():
        x = (torch.from_numpy(held_out).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        accuracy = {name: float((m(x).argmax(1).numpy() == held_labels).mean())
                    for name, m in (("float", original), ("w8a8", quant))}
    out = {"accuracy": accuracy}
    for name, model in (("twin", twin), ("original", quant)):
        path = export_qonnx_model(model, DATA_META, tmp / f"{name}.onnx")
        out[name] = {"check": check_export(model, DATA_META, path, images[:4], labels[:4]), "onnx": path,
                     "dir": tmp / name, "progress": io.StringIO()}
        out[name]["dataflow"] = prepare_network(path, tmp / name, progress=out[name]["progress"])
    return out


def test_8bit_original_stays_faithful_to_the_float_one(prepared):
    """W8A8 post-training quantization with calibrated scales and signed residual adds.

    With unsigned add inputs (the twin's) the same network lost 18 points here (67 % -> 49 %)."""
    accuracy = prepared["accuracy"]
    assert accuracy["w8a8"] >= accuracy["float"] - 0.05, accuracy


def test_front_end_prints_one_line_per_finn_step(prepared):
    from twindnn.hardware.finn_env import PREPARE_STEPS

    for name in ("twin", "original"):
        lines = prepared[name]["progress"].getvalue().splitlines()
        assert len(lines) == len(PREPARE_STEPS), lines
        for i, (line, step) in enumerate(zip(lines, PREPARE_STEPS), 1):
            assert f"FINN+ step {i}/{len(PREPARE_STEPS)} " in line and line.endswith(" s)")
            assert (step if isinstance(step, str) else step.__name__) in line
    # the intermediate models keep FINN+'s step names
    assert (prepared["twin"]["dir"] / "build" / "intermediate_models" / "step_create_dataflow_partition.onnx").exists()


def test_export_matches_pytorch(prepared):
    for net in networks(prepared).values():
        assert net["check"]["prediction_agreement"] == 1.0


def test_streamlined_graph_computes_what_the_exported_one_does(prepared):
    """Binary maps pad with -1 in the twin, in QONNX and in FINN's XNOR layers: the same logits."""
    from twindnn.hardware.export import qonnx_logits

    images, _ = _images(12, seed=2)
    for name, net in networks(prepared).items():
        scale = json.loads((net["dir"] / "host_output_scale.json").read_text())
        ref = qonnx_logits(net["onnx"], images)
        # all images in one execution give what one image at a time gives
        single = np.concatenate([qonnx_logits(net["onnx"], images[i:i + 1]) for i in range(len(images))])
        np.testing.assert_allclose(ref, single, rtol=1e-5, atol=1e-5)
        streamlined = net["dir"] / "build" / "intermediate_models" / "step_residual_streamline.onnx"
        got = qonnx_logits(streamlined, images) * scale["logit_scale"] + scale["logit_bias"]
        assert np.abs(ref - got).max() < 1e-3 * max(1.0, np.abs(ref).max()), name
    twin = onnx.load(str(prepared["twin"]["dataflow"]))
    assert "FMPadding" in {n.op_type for n in twin.graph.node}  # the -1 (binary 0) padding, in hardware


def test_every_node_in_the_dataflow_partition(prepared):
    for net in networks(prepared).values():
        parent = onnx.load(str(net["dir"] / "build" / "intermediate_models" / "dataflow_parent.onnx"))
        assert [n.op_type for n in parent.graph.node] == ["StreamingDataflowPartition"]
        model = onnx.load(str(net["dataflow"]))
        assert all(n.domain.startswith("finn.custom_op.fpgadataflow") for n in model.graph.node)
        ops = {n.op_type for n in model.graph.node}
        assert {"DuplicateStreams", "ElementwiseAdd"} <= ops  # residual forks and adds mapped
        assert "Shuffle" not in ops  # layout transposes cancelled, not turned into hardware


def _layers(prepared, name, board, target_fps=1000):
    """(op type, weight bits, DSP, LUT) of each matrix unit at one folding, and the design's figures."""
    from qonnx.custom_op.registry import getCustomOp

    path = EstimatePath(prepared[name]["dataflow"], board)
    design = path.evaluate(path.fold(target_fps, 8191))
    by_name = {n.name: n for n in path.specialized.graph.node}
    rows = [(lay["op_type"], getCustomOp(by_name[lay["layer"]]).get_input_datatype(1).bitwidth(), lay["DSP"],
             lay["LUT"]) for lay in design["layers"] if lay["op_type"].startswith("MVAU")]
    return rows, design


def test_resource_types(prepared):
    board = load_board("Pynq-Z2")
    twin_rows, _ = _layers(prepared, "twin", board)
    binary = [r for r in twin_rows if r[1] == 1]
    assert binary and all(r[2] == 0 for r in binary)  # XNOR/popcount on LUTs
    assert all(r[3] > 0 for r in binary)
    orig_rows, design = _layers(prepared, "original", board, target_fps=100_000)  # PE > 2: lanes matter
    assert all(r[0] == "MVAU_rtl" for r in orig_rows)  # 8-bit signed weights -> RTL MVAU on DSPs
    assert sum(r[2] for r in orig_rows) > 0
    assert design["DSP"] > 0 and "LUT not estimated (0): MVAU_rtl" in design["zero_estimated"]
    # 8-bit x 8-bit on a DSP48E1 (Zynq-7000): the RTL packs 1 + (25 - 1 - 8) // 15 = 2 lanes, FINN+ assumes 4
    assert design["DSP"] > design["DSP_finn"]


def test_rtl_dsp_lanes_follow_the_rtl():
    # DSP48E2 (A 27 bits): 8x8 -> 1 + (27 - 1 - 8) // 15 = 2 lanes; 4x4 -> 1 + 22 // 7 = 4; narrow 8x8 still 2
    assert rtl_mvu_dsps(pe=8, simd=3, weight_bits=8, act_bits=8, narrow_weights=False, dsp_block="DSP48E2") == 12
    assert rtl_mvu_dsps(pe=8, simd=3, weight_bits=4, act_bits=4, narrow_weights=False, dsp_block="DSP48E2") == 6
    assert rtl_mvu_dsps(pe=5, simd=1, weight_bits=8, act_bits=8, narrow_weights=True, dsp_block="DSP48E2") == 3
    assert rtl_mvu_dsps(pe=4, simd=6, weight_bits=8, act_bits=8, narrow_weights=False, dsp_block="DSP58") == 8


@pytest.mark.parametrize("board_name", ["ZCU104"])
def test_search_estimate_equals_the_build(prepared, tmp_path, board_name):
    """One estimate path: a design the search evaluates, built by FINN+'s builder, gives the same figures."""
    board = load_board(board_name)
    path = EstimatePath(prepared["original"]["dataflow"], board)
    foldings = [path.fold(200, 8191), path.fold(20000, 8191)]
    # a placement the search makes: the largest weight memory in URAM
    placed = json.loads(json.dumps(foldings[1]))
    mvau = next(n for n in placed if n.startswith("MVAU"))
    placed[mvau].update(ram_style="ultra", runtime_writeable_weights=1)
    foldings.append(placed)
    for i, folding in enumerate(foldings):
        searched = path.evaluate(folding)
        (tmp_path / f"f{i}.json").write_text(json.dumps(folding))
        built = build_network(prepared["original"]["dataflow"], tmp_path / f"b{i}", board, tmp_path / f"f{i}.json")
        for key in ("LUT", "DSP", "DSP_finn", "BRAM_18K", "URAM", "max_cycles", "critical_path_cycles",
                    "estimated_latency_ms", "estimated_throughput_fps"):
            assert searched[key] == built[key], (i, key, searched[key], built[key])
    assert built["URAM"] > 0  # the placement really moved weights


def test_search_names_its_limit_and_its_designs_fit(prepared):
    board = load_board("Pynq-Z2")
    for name in ("twin", "original"):
        path = EstimatePath(prepared[name]["dataflow"], board)
        designs, foldings, limit = search.search_network(path, name, board, 0.85, fps_start=100, fps_factor=8,
                                                     mvau_wwidth_max=8191, refine_steps=2)
        assert len(designs) == len(foldings) and limit
        fitting = designs[[search.fits(r, board, 0.85) for _, r in designs.iterrows()]]
        assert len(fitting)
        assert limit.startswith(("fully unfolded", "resources: the next faster design needs"))
        if limit.startswith("resources"):  # a faster design was tried and it is over budget
            assert (~designs.apply(lambda r: search.fits(r, board, 0.85), axis=1)).any()


def test_searched_designs_stay_below_the_resource_bound_and_the_mix_fits(prepared, tmp_path):
    """The search step over both MAC resources: every design names its MAC resource, no fitting
    design beats the network's resource bound, and the optimizer's pair, recomputed from its counts,
    fits the budget."""
    board = load_board("Pynq-Z2")
    designs = {}
    for name in ("twin", "original"):
        stage = SearchStage(board="Pynq-Z2", network=name, role=name, clock_mhz=None, utilization=0.85,
                            fps_start=100, fps_factor=8, mvau_wwidth_max=8191, refine_steps=1, macs=["auto", "lut"])
        out = {"designs": tmp_path / f"{name}.csv", "foldings": tmp_path / f"{name}.json"}
        search_step(stage, {"dataflow": prepared[name]["dataflow"]}, out)
        designs[name] = pd.read_csv(out["designs"])
        d = designs[name]
        assert set(d["mac"]) == {"auto", "lut"} and d["design"].tolist() == list(range(len(d)))
        assert len(json.loads(out["foldings"].read_text())) == len(d)
        fitting = d[d["fits"]]
        assert len(fitting) and (fitting["estimated_throughput_fps"] <= fitting["resource_bound_fps"] + 1e-6).all()
        assert (d["resource_bound_fps"] >= d[["resource_bound_dsp_fps", "resource_bound_lut_fps"]].max(axis=1)).all()
        assert (d.loc[d["mac"] == "lut", "DSP"] == 0).all()  # LUT designs leave the DSPs free
    cap = search.budget(board, 0.85)
    best = co.best_pair(designs["twin"], designs["original"], cap, 0.3, "work_sharing")
    assert best is not None
    for role in ("twin", "original"):
        res = recompute_resources(best["counts"][role], designs[role])
        for r in co.RESOURCES:
            assert res[r] <= cap[r] + 1e-9
    total = {r: sum(recompute_resources(best["counts"][k], designs[k])[r] for k in ("twin", "original"))
             for r in co.RESOURCES}
    assert total == pytest.approx(best["resources"])
    host = json.loads((prepared["twin"]["dir"] / "host_output_scale.json").read_text())
    assert host["logit_scale"] > 0


def test_unmapped_node_stops_the_build():
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    graph = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], name="Sin_0")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = ModelWrapper(helper.make_model(graph))
    with pytest.raises(UnmappedNodeError, match="Sin_0"):
        step_check_all_mapped(model, None)


@pytest.fixture(scope="module")
def paper_pair(tmp_path_factory):
    """The paper's precisions: a ternary-weight (one scale per output channel) 8-bit-activation twin
    and an original with 16-bit weights and 8-bit activations (the authors' 8-bit variant)."""
    tmp = tmp_path_factory.mktemp("paper")
    original, ckpt = _trained_original(tmp, seed=1)
    spec = QuantSpec.from_config("t2a8", {"ternary": True, "act_bits": 8, "weight_scaling": "per_channel"})
    twin = _train(create_twin(original, spec))
    images, labels = _images(64, seed=1)
    quant, _ = quantize_original(ckpt, 16, 8, images)
    out = {}
    for name, model in (("twin", twin), ("original", quant)):
        path = export_qonnx_model(model, DATA_META, tmp / f"{name}.onnx")
        out[name] = {"check": check_export(model, DATA_META, path, images[:4], labels[:4]),
                     "dataflow": prepare_network(path, tmp / name)}
    return out


def test_papers_precisions_go_through_finn_and_the_system_model(paper_pair):
    from qonnx.custom_op.registry import getCustomOp

    assert all(paper_pair[n]["check"]["prediction_agreement"] == 1.0 for n in ("twin", "original"))
    board = load_board("Ultra96-V2")
    designs, limits, kinds = {}, {}, {}
    for name, mac in (("twin", "lut"), ("original", "auto")):
        path = EstimatePath(paper_pair[name]["dataflow"], board, mac=mac)
        designs[name], foldings, limits[name] = search.search_network(path, name, board, 0.85, fps_start=100,
                                                                  fps_factor=8, mvau_wwidth_max=8191, refine_steps=1)
        design = path.evaluate(foldings[0])
        by_name = {n.name: n for n in path.specialized.graph.node}
        kinds[name] = [(lay["op_type"], getCustomOp(by_name[lay["layer"]]).get_input_datatype(1).bitwidth(),
                        lay["DSP"], foldings[0][lay["layer"]].get("resType")) for lay in design["layers"]
                       if lay["op_type"].startswith("MVAU")]
    # the twin: every matrix unit an HLS one with its multipliers on LUTs, no DSP; inner weights ternary (2 bits)
    assert all(op == "MVAU_hls" and res == "lut" and dsp == 0 for op, _, dsp, res in kinds["twin"])
    assert any(bits == 2 for _, bits, _, _ in kinds["twin"])
    # the original: 16-bit weights on DSP-based RTL units
    assert all(op == "MVAU_rtl" and dsp > 0 for op, _, dsp, _ in kinds["original"])
    assert any(bits > 8 for _, bits, _, _ in kinds["original"])
    points = pd.DataFrame([{"gate": "logit_margin", "target_kind": "accuracy_recovery", "target_value": 0.9,
                            "forwarded_fraction": 0.3, "twin_accuracy": 0.6, "original_accuracy": 0.7,
                            "system_accuracy": 0.69, "accuracy_recovery": 0.9}])
    rows = co.system_rows(board, "t2a8", designs["twin"].assign(mac="lut"), designs["original"].assign(mac="auto"),
                          points, 0.85)
    assert set(rows["scheduler"]) == {"work_sharing", "twin_first"} and rows["original_alone_fps"].gt(0).all()
    assert not budget_violations(rows.assign(fits=rows["fits"]))


def test_activations_wider_than_8_bits_are_refused(tmp_path):
    with pytest.raises(ValueError, match="act_bits 16: FINN computes activations as thresholds"):
        quantize_original(tmp_path / "never_read.pt", 16, 16)


def test_mobilenetv2_twin_maps_onto_finn(tmp_path):
    """The paper's MobileNetV2 twin (ternary weights, 8-bit activations), shrunk to one block per
    stage: it exports faithfully and every layer maps onto a FINN+ hardware layer, the depthwise
    convolutions onto vector-vector units (VVAU) and the skips onto DuplicateStreams/ElementwiseAdd."""
    meta = dict(DATA_META, image_size=32)  # five stride-2 stages: 32 px leaves a 2x2 map
    cfg = {"model": "mobilenetv2_035", "model_kwargs": {"depth_multiplier": 0.3}}
    torch.manual_seed(0)
    original = build_model("original", cfg, meta)
    assert [len(stage) for stage in original.blocks] == [1, 1, 1, 2, 1, 1, 1]
    spec = QuantSpec.from_config("t2a8", {"ternary": True, "act_bits": 8, "weight_scaling": "per_channel"})
    twin = create_twin(original, spec).eval()
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (4, 32, 32, 1)).astype(np.uint8), rng.integers(0, 4, 4)
    path = export_qonnx_model(twin, meta, tmp_path / "twin.onnx")
    assert check_export(twin, meta, path, images, labels)["prediction_agreement"] == 1.0
    dataflow = onnx.load(prepare_network(path, tmp_path / "twin"))
    ops = [node.op_type for node in dataflow.graph.node]
    depthwise = sum(1 for m in original.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1)
    assert ops.count("VVAU") == depthwise
    assert ops.count("ElementwiseAdd") == sum(b.has_skip for stage in original.blocks for b in stage) == 1


def test_bram_heavy_design_gets_a_placed_variant_for_pairs(prepared):
    """A design that fits alone but takes most of the BRAM budget also gets a variant with weights in
    URAM that leaves half the BRAM free, and the pair search can use it."""
    base = load_board("ZCU104")
    path = EstimatePath(prepared["original"]["dataflow"], base)
    design = path.evaluate(path.fold(2000, 8191))
    assert design["BRAM_18K"] > 0
    # a board on which this design takes 80 % of the BRAM budget, with URAM to spare
    board = {**base, "resources": {**base["resources"], "BRAM_18K": design["BRAM_18K"] / (0.85 * 0.8)}}
    path = EstimatePath(prepared["original"]["dataflow"], board)
    designs, _, _ = search.search_network(path, "original", board, 0.85, fps_start=2000, fps_factor=1e9,
                                      mvau_wwidth_max=8191, refine_steps=0)
    plain = designs[designs["placement"] == "weights: BRAM (FINN default)"].iloc[0]
    variants = designs[designs["placement"].str.endswith("(BRAM for a pair)")]
    assert len(variants) and plain["BRAM_18K"] == design["BRAM_18K"]
    variant = variants.iloc[0]
    assert variant["BRAM_18K"] <= search.PAIR_BRAM_SHARE * search.budget(board, 0.85)["BRAM_18K"] + 1e-9
    assert variant["URAM"] > plain["URAM"] and search.fits(variant, board, 0.85)
    # the same folding: the same speed
    assert variant["estimated_throughput_fps"] == plain["estimated_throughput_fps"]
