"""The FPGA half's steps that the ``scripts/hw_*.py`` rule scripts call, each ``step(stage, inputs, outputs)``.

``stage`` is the rule's config object (:mod:`twindnn.config`); ``inputs`` and ``outputs`` map the
rule's input/output names to paths. What they share with the software half lives below both:
datasets in :mod:`twindnn.data`, checkpoints in :mod:`twindnn.models`, logits files in
:mod:`twindnn.artifacts`, the system model in :mod:`twindnn.system`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data as data_lib
from ..answer import design_point_row
from ..artifacts import accuracy, load_npz, save_logits
from ..cascade import rescore_operating_points
from ..config import (
    BoardTimingStage,
    BuildStage,
    ColocateStage,
    ExportStage,
    PairBuildStage,
    PrepareStage,
    QuantizeStage,
    SearchStage,
    TablesStage,
)
from ..hardware import colocate as co
from ..hardware import figures, search, tables
from ..hardware.board_timing import run_on_board, run_pair_on_board
from ..hardware.boards import RESOURCES, load_board
from ..hardware.bounds import layer_costs, merge_costs, resource_bound
from ..hardware.estimate import EstimatePath
from ..hardware.export import check_export, export_qonnx_model, qonnx_logits, quantize_original
from ..hardware.finn_build import build_network, prepare_network
from ..hardware.multi_dnn import build_pair
from ..models import checkpoint_meta, load_trained
from ..provenance import file_sha256
from ..system.model import SOURCE_ESTIMATE
from ..system.simulate import simulate_system_rows
from ..train import fit, save_checkpoint


def quantize_original_step(stage: QuantizeStage, inputs: Mapping, outputs: Mapping, log=sys.stderr) -> dict:
    """The 8-bit (or n-bit) original: PTQ with calibrated activations, optional short QAT, logits.

    inputs: original (checkpoint), meta; outputs: checkpoint, logits (npz), work_dir (QAT's).
    """
    calibration, _ = data_lib.sample_split_of(inputs, "train", int(stage.calibration_images))
    model, source = quantize_original(inputs["original"], int(stage.weight_bits), int(stage.act_bits), calibration,
                                      log=log)
    meta = checkpoint_meta("original_quant", source["model_cfg"], source["data_meta"], model.spec)
    if int(stage.qat_epochs) > 0:
        cfg = stage.fit_config()
        train_set, val_set = data_lib.training_datasets(inputs, meta["data_meta"], cfg["augment"])
        fingerprint = stage.fingerprint(data=file_sha256(inputs["meta"]), original=file_sha256(inputs["original"]))
        fit(model, train_set, val_set, cfg, meta["data_meta"]["mean"], meta["data_meta"]["std"], outputs["work_dir"],
            outputs["checkpoint"], Path(outputs["work_dir"]) / "qat_metrics.csv", meta, log=log,
            fingerprint=fingerprint)
    else:
        save_checkpoint(outputs["checkpoint"], {"state_dict": model.state_dict(), "meta": meta})
    return save_logits(outputs["checkpoint"], inputs, outputs["logits"], device=stage.device)


def export_step(stage: ExportStage, inputs: Mapping, outputs: Mapping) -> dict:
    """QONNX export and the check that QONNX execution predicts as PyTorch does on real test images.

    inputs: checkpoint, meta; outputs: onnx, check (CSV).
    """
    checkpoint = inputs["checkpoint"]
    model, network = load_trained(checkpoint)
    meta = network["data_meta"]
    export_qonnx_model(model, meta, outputs["onnx"])
    images, labels = data_lib.sample_split_of(inputs, "test", int(stage.check_images))
    row = check_export(model, meta, outputs["onnx"], images, labels)
    pd.DataFrame([row]).to_csv(outputs["check"], index=False)
    if row["prediction_agreement"] < 1.0:
        raise RuntimeError(f"QONNX export of {checkpoint} disagrees with PyTorch on "
                           f"{1 - row['prediction_agreement']:.1%} of {row['images']} test images")
    return row


def prepare_step(stage: PrepareStage, inputs: Mapping, outputs: Mapping, progress=None) -> dict:
    """FINN front end; checks the streamlined graph (integer thresholds, host scale) against QONNX.

    inputs: onnx, meta; outputs: dataflow (its folder holds the FINN build), check (CSV).

    The check runs both graphs on ``n_images`` labelled test images and writes their prediction
    agreement and both accuracies to ``check_csv``; below ``min_agreement`` the build stops (a
    broken graph agrees on about 1/num_classes). The graphs should agree exactly: binary maps
    pad with -1 in the twin (``twindnn.models.BipolarPad``) as in FINN's XNOR layers. Before
    that, a CIFAR-10 W1A1 twin with zero padding agreed on only 87.5 % of 64 images.
    """
    onnx_path, out_dir, check_csv = inputs["onnx"], Path(outputs["dataflow"]).parent, outputs["check"]
    min_agreement = float(stage.min_agreement)
    dataflow = prepare_network(onnx_path, out_dir, progress=progress)
    images, labels = data_lib.sample_split_of(inputs, "test", int(stage.check_images))
    scale = json.loads((Path(out_dir) / "host_output_scale.json").read_text())
    ref = qonnx_logits(onnx_path, images)
    streamlined = Path(out_dir) / "build" / "intermediate_models" / "step_residual_streamline.onnx"
    got = qonnx_logits(streamlined, images) * scale["logit_scale"] + scale["logit_bias"]
    row = {"images": len(images), "prediction_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
           "qonnx_accuracy": accuracy(ref, labels), "graph_accuracy": accuracy(got, labels),
           "max_abs_logit_diff": float(np.abs(ref - got).max()), "dataflow_model": str(dataflow)}
    pd.DataFrame([row]).to_csv(check_csv, index=False)
    if row["prediction_agreement"] < min_agreement:
        raise RuntimeError(f"streamlined FINN graph of {onnx_path} agrees with QONNX on only "
                           f"{row['prediction_agreement']:.1%} of the images (< hardware.streamline_min_agreement "
                           f"{min_agreement:.0%}): the streamlining broke the network. {row}")
    if row["prediction_agreement"] < 1.0:
        print(f"warning: streamlined graph agrees with QONNX on {row['prediction_agreement']:.1%} of "
              f"{row['images']} images (accuracy {row['graph_accuracy']:.1%} vs {row['qonnx_accuracy']:.1%}); "
              f"float thresholds can tie with integer accumulators; see {check_csv}")
    return row


def search_step(stage: SearchStage, inputs: Mapping, outputs: Mapping, log=sys.stderr) -> str:
    """The design space of one network on one board, for each of its MAC resources
    (:func:`twindnn.hardware.search.search_network`), with the network's resource bound
    (:func:`twindnn.hardware.bounds.resource_bound`) beside every design.

    inputs: dataflow; outputs: designs (CSV: a ``mac`` column, the limit of each MAC choice's
    fastest fitting design, the bound and each design's share of it), foldings (JSON list, by design id).
    """
    board = load_board(stage.board, clock_mhz=stage.clock_mhz)
    util = float(stage.utilization)
    tables, foldings, costs, limits = [], [], [], []
    for mac in stage.macs:
        path = EstimatePath(inputs["dataflow"], board, mac=mac)
        designs, folds, limit = search.search_network(path, f"{stage.role} ({mac})", board, util, stage.fps_start,
                                                      stage.fps_factor, stage.mvau_wwidth_max,
                                                      refine_steps=stage.refine_steps, log=log)
        designs["network"] = stage.role
        designs["design"] = designs["design"] + len(foldings)
        designs.insert(2, "mac", mac)
        designs["limit_of_fastest_fitting"] = limit
        tables.append(designs)
        foldings += folds
        costs.append(layer_costs(path.specialized, board["part"]))
        limits.append(f"{mac}: {limit}")
    designs = pd.concat(tables, ignore_index=True)
    designs.insert(0, "board", stage.board)
    designs["fits"] = [search.fits(r, board, util) for _, r in designs.iterrows()]
    bound = resource_bound(merge_costs(*costs), search.budget(board, util), board["clock_mhz"])
    for key, value in bound.items():
        designs[key.replace("bound_", "resource_bound_")] = value
    designs["bound_share"] = designs["estimated_throughput_fps"] / bound["bound_fps"]
    designs["budget_utilization"] = util
    designs["source"] = SOURCE_ESTIMATE
    designs.to_csv(outputs["designs"], index=False)
    Path(outputs["foldings"]).write_text(json.dumps(foldings))
    return (f"{stage.board} {stage.network}: {len(designs)} designs evaluated; resource bound "
            f"{bound['bound_fps']:,.0f} FPS; fastest fitting limited by: {'; '.join(limits)}")


def colocate_step(stage: ColocateStage, inputs: Mapping, outputs: Mapping, twin: str, log=sys.stderr) -> str:
    """The optimizer's placement of one twin and the original on one board (from each network's
    searched designs), the system table (TwinDNN and its baselines per operating point and
    scheduler), and the design point's foldings.

    inputs: twin_designs, twin_foldings, original_designs, original_foldings, operating_points,
    twin_logits, original_logits; outputs: system, folding_twin, folding_original,
    folding_original_alone, design_points (JSON: each built role's design, its MAC resource and
    the mix it stands for).
    """
    board = load_board(stage.board)
    util = float(stage.utilization)
    designs, foldings = {}, {}
    for role in ("twin", "original"):
        designs[role] = pd.read_csv(inputs[f"{role}_designs"])
        foldings[role] = json.loads(Path(inputs[f"{role}_foldings"]).read_text())

    tl, ol = load_npz(inputs["twin_logits"]), load_npz(inputs["original_logits"])
    chosen = pd.read_csv(inputs["operating_points"])
    # the FPGA half builds the configured rule's operating points (cascade.selection)
    pts = rescore_operating_points(tl, ol, chosen[chosen["selection"] == stage.selection])
    over = stage.overheads
    system = co.system_rows(board, twin, designs["twin"], designs["original"], pts, util,
                            max_replicas=stage.max_replicas, per_instance={"LUT": over["instance_lut"]},
                            dispatcher={"LUT": over["dispatcher_lut"], "BRAM_18K": over["dispatcher_bram_18k"]},
                            sensitivity=stage.sensitivity)
    # The closed forms beside a replay of the test split through the two accelerators, then the
    # time-shared baseline at TwinDNN's simulated latency (or the configured budget).
    system = simulate_system_rows(system, pts, tl, ol)
    system = co.time_shared_rows(system, stage.switch_ms, stage.latency_budget_ms)
    system.to_csv(outputs["system"], index=False)

    # The builds: the design point's pair, and the original's best whole-device mix, each by the
    # design that carries most of its mix's throughput (the tables recompute the mix from its counts).
    fitting = system[system["fits"].astype(bool)]
    design_point = None
    first = system.iloc[0]
    if fitting.empty:
        # Nothing fits together: build the slowest designs, so the tables show by how much.
        print(f"WARNING {stage.board}: twin and original do not fit together in {util:.0%} of the board; "
              "building their slowest designs", file=log)
        picks = {"twin": (0, {0: 1}), "original": (0, {0: 1})}
    else:
        dp = design_point_row(fitting, stage.design_gate, stage.design_target, stage.scheduler)
        picks = {"twin": (int(dp["twin_design"]), _counts(dp["twin_counts"])),
                 "original": (int(dp["original_design"]), _counts(dp["original_counts"]))}
        match = pts[(pts["gate"] == dp["gate"]) & (pts["target_kind"] == dp["target_kind"])
                    & ((pts["target_value"] == dp["target_value"]) | (dp["gate"] == "oracle"))]
        design_point = {k: (dp[k].item() if hasattr(dp[k], "item") else dp[k]) for k in (
            "gate", "target_value", "scheduler", "forwarded_fraction", "twindnn_fps", "twindnn_accuracy",
            "simulated_throughput_fps", "simulated_accuracy")}
        design_point["threshold"] = float(match["threshold"].iloc[0])
        print(f"design point ({stage.scheduler}): {dp['gate']} target {dp['target_value']}, "
              f"f={dp['forwarded_fraction']:.3f}, TwinDNN {dp['twindnn_fps']:,.0f} FPS ({dp['twin_mix']} | "
              f"{dp['original_mix']}) vs original alone {dp['original_alone_fps']:,.0f} FPS "
              f"({dp['original_alone_mix']}) (FINN+ estimates)", file=log)
    alone = _counts(first["original_alone_counts"])
    picks["original_alone"] = (co.main_design(alone, designs["original"]), alone) if alone else (0, {0: 1})
    points = {}
    for role, (i, counts) in picks.items():
        network = "twin" if role == "twin" else "original"
        co.save_folding(foldings[network][i], outputs[f"folding_{role}"])
        row = designs[network].set_index("design").loc[i]
        points[role] = {"network": network, "design": i, "replicas": int(sum(counts.values())),
                        "mac": str(row["mac"]), "mix": {str(d): int(n) for d, n in counts.items()},
                        **{c: (row[c].item() if hasattr(row[c], "item") else row[c])
                           for c in ("estimated_throughput_fps", "max_cycles", "critical_path_cycles", *RESOURCES)}}
    Path(outputs["design_points"]).write_text(json.dumps({"board": stage.board, "twin": twin,
                                                          "scheduler": stage.scheduler, "roles": points,
                                                          "design_point": design_point}, indent=2))
    return system.to_string(index=False)


def _counts(text) -> dict:
    """A mix from its JSON column ({design: instances}), keys as ints."""
    return {int(d): int(n) for d, n in json.loads(text).items()} if isinstance(text, str) else {}


def built_mac(design_points: str, role: str) -> str:
    """The MAC resource of the design a build of ``role`` builds (from the colocate step's choice)."""
    return json.loads(Path(design_points).read_text())["roles"][role]["mac"]


def build_step(stage: BuildStage, inputs: Mapping, outputs: Mapping) -> dict:
    """One network's FINN+ build on one board (estimates; with hardware.vivado the bitstream too).

    inputs: dataflow, folding, design_points; outputs: estimates (JSON), build_dir.
    """
    board = load_board(stage.board, clock_mhz=stage.clock_mhz)
    out_dir = Path(outputs["build_dir"])
    mac = built_mac(inputs["design_points"], stage.role)
    est = build_network(inputs["dataflow"], out_dir, board, inputs["folding"], vivado=bool(stage.vivado), mac=mac)
    est["mac"] = mac
    est["board"] = stage.board
    est["budget"] = board["resources"]
    est["source"] = SOURCE_ESTIMATE
    est["deploy_dir"] = str(out_dir / "deploy") if stage.vivado else None
    Path(outputs["estimates"]).write_text(json.dumps(est, indent=2))
    return {k: v for k, v in est.items() if k != "layers"}


def build_pair_step(stage: PairBuildStage, inputs: Mapping, outputs: Mapping) -> dict:
    """The design point's twin and original as ONE design (FINN+'s multi-DNN Parallel mode): joint
    estimate reports, or with hardware.vivado the joint bitstream. inputs: twin_dataflow,
    original_dataflow, folding_twin, folding_original, design_points; outputs: estimates (JSON), build_dir."""
    board = load_board(stage.board, clock_mhz=stage.clock_mhz)
    est = build_pair(inputs["twin_dataflow"], inputs["original_dataflow"], inputs["folding_twin"],
                     inputs["folding_original"], board, outputs["build_dir"], vivado=bool(stage.vivado),
                     macs={role: built_mac(inputs["design_points"], role) for role in ("twin", "original")})
    est.update(board=stage.board, budget=board["resources"], source=SOURCE_ESTIMATE,
               deploy_dir=str(Path(outputs["build_dir"]) / "joint" / "build" / "deploy") if stage.vivado else None)
    Path(outputs["estimates"]).write_text(json.dumps(est, indent=2, default=str))
    return {k: v for k, v in est.items() if k not in ("layers", "interconnect")}


def board_timing_step(stage: BoardTimingStage, inputs: Mapping, outputs: Mapping) -> dict:
    """Time one deployed accelerator on its board over SSH. inputs: estimates, meta; outputs: report."""
    est = json.loads(Path(inputs["estimates"]).read_text())
    images, labels = data_lib.read_split(inputs, "test")
    scale = (est.get("host_output") or {}).get("logit_scale", 1.0)
    row = run_on_board(est.get("deploy_dir") or "", np.asarray(images), np.asarray(labels), stage.host,
                       user=stage.user, batch_size=int(stage.batch_size), logit_scale=scale)
    row["estimated_throughput_fps"] = est["estimated_throughput_fps"]
    Path(outputs["report"]).write_text(json.dumps(row, indent=2))
    return row


def board_pair_step(stage: BoardTimingStage, inputs: Mapping, outputs: Mapping) -> dict:
    """The pair on its board with the paper's host loop, beside the simulator's prediction.
    inputs: pair (the joint build's JSON), design_points, meta; outputs: report."""
    est = json.loads(Path(inputs["pair"]).read_text())
    dp = json.loads(Path(inputs["design_points"]).read_text())["design_point"]
    if dp is None:
        raise RuntimeError(f"{inputs['design_points']}: no fitting design point to time on the board")
    images, labels = data_lib.read_split(inputs, "test")
    scale = {n: ((est["networks"][n].get("host_output") or {}).get("logit_scale", 1.0)) for n in ("twin", "original")}
    row = run_pair_on_board(est.get("deploy_dir") or "", np.asarray(images), np.asarray(labels), stage.host,
                            threshold=dp["threshold"], scheduler=dp["scheduler"], twin_scale=scale["twin"],
                            original_scale=scale["original"], user=stage.user, batch_size=int(stage.batch_size))
    row.update({f"predicted_{k}": dp[k] for k in ("twindnn_fps", "twindnn_accuracy", "simulated_throughput_fps",
                                                    "simulated_accuracy")})
    Path(outputs["report"]).write_text(json.dumps(row, indent=2))
    return row


def tables_step(stage: TablesStage, inputs: Mapping, outputs: Mapping) -> str:
    """Resource, FPS (estimated / measured) and headline tables, and the accuracy-vs-throughput figure.

    Stops with :class:`twindnn.hardware.tables.SearchBuildMismatch` if a build's figures differ from
    the search's for the same design."""
    res = tables.resource_table(list(inputs["builds"]), list(inputs["design_points"]), stage.utilization,
                                list(inputs["pairs"]))
    res.to_csv(outputs["resources"], index=False)
    tables.fps_table(res, list(inputs["board_reports"]), list(inputs["checks"])).to_csv(outputs["fps"], index=False)
    system = pd.concat([pd.read_csv(p) for p in inputs["systems"]], ignore_index=True)
    head = tables.headline_table(system)
    head.to_csv(outputs["headline"], index=False)
    figures.accuracy_vs_throughput_figure(system, outputs["figure"], gate=stage.gate, scheduler=stage.scheduler)
    paper = tables.paper_table(head, stage.gate)
    paper.to_csv(outputs["paper_csv"], index=False)
    Path(outputs["paper_md"]).write_text(tables.paper_markdown(paper, stage.gate))
    figures.paper_figure(head, outputs["paper_figure"], stage.gate)
    return head.to_string(index=False)
