"""Config-level steps of the FPGA half that the ``scripts/hw_*.py`` rule scripts call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import data as data_lib
from ..models import TwinSpec, load_checkpoint, load_trained
from ..train import CachedImages, fit, predict_logits, save_checkpoint
from . import colocate as co
from .boards import load_board
from .export import check_export, export_qonnx_model, qonnx_logits, quantize_original
from .finn_build import build_network, prepare_finn, prepare_network
from .system_model import SOURCE_ESTIMATE, operating_points_with, system_rows

DEFAULTS = {"boards": ["Pynq-Z2"], "twins": None, "original_quant": {"weight_bits": 8, "act_bits": 8,
            "calibration_images": 512, "qat_epochs": 0}, "utilization": 0.85, "vivado": False,
            "check_images": 16, "fps_start": 10.0, "fps_factor": 2.0, "mvau_wwidth_max": 36,
            "design_point": {"gate": "max_softmax", "target_value": 0.9}, "board_hosts": {}, "board_user": None,
            "board_batch_size": 100}


def hw_config(config: dict) -> dict:
    cfg = {**DEFAULTS, **(config.get("hardware") or {})}
    cfg["original_quant"] = {**DEFAULTS["original_quant"], **cfg.get("original_quant", {})}
    return cfg


def quantize_original_step(config: dict, original_checkpoint, cache_dir, checkpoint, logits_npz, work_dir,
                           log=sys.stderr) -> dict:
    """The 8-bit (or n-bit) original: PTQ with calibrated activations, optional short QAT, logits."""
    q = hw_config(config)["original_quant"]
    calibration, _ = data_lib.sample_split(cache_dir, "train", int(q["calibration_images"]))
    model = quantize_original(original_checkpoint, int(q["weight_bits"]), int(q["act_bits"]), calibration, log=log)
    meta_src = load_checkpoint(original_checkpoint)["meta"]
    spec = model.spec
    meta = {"kind": "twin", "role": "original_quant", "model_cfg": {k: v for k, v in meta_src["model_cfg"].items()
                                                                  if k != "pretrained_file"},
            "data_meta": meta_src["data_meta"], "twin_spec": spec.__dict__}
    if int(q["qat_epochs"]) > 0:
        cfg = dict(config["original"]["training"])
        cfg.update(epochs=int(q["qat_epochs"]), lr=float(q.get("qat_lr", 0.001)), optimizer="adamw",
                   weight_decay=0.0, warmup_epochs=0.0)
        cfg.update({k: v for k, v in config.get("compute", {}).items() if k in ("device", "num_workers", "seed")})
        val_images, val_labels = data_lib.load_split(cache_dir, "val")
        size = meta["data_meta"]["image_size"]
        tr = CachedImages(*data_lib.load_split(cache_dir, "train"), cfg.get("augment"), size)
        va = CachedImages(val_images, val_labels, None, size)
        fit(model, tr, va, cfg, meta["data_meta"]["mean"], meta["data_meta"]["std"], work_dir, checkpoint,
            Path(work_dir) / "qat_metrics.csv", meta, log=log)
    else:
        save_checkpoint(checkpoint, {"state_dict": model.state_dict(), "meta": meta})
    model = load_trained(checkpoint)
    arrays = {}
    dm = meta["data_meta"]
    for split in ("val", "test"):
        images, labels = data_lib.load_split(cache_dir, split)
        logits = predict_logits(model, images, dm["mean"], dm["std"], out_size=dm["image_size"])
        arrays[f"{split}_logits"], arrays[f"{split}_labels"] = logits, labels.astype(np.int64)
        arrays[f"{split}_accuracy"] = np.float64((logits.argmax(1) == labels).mean())
    Path(logits_npz).parent.mkdir(parents=True, exist_ok=True)
    np.savez(logits_npz, **arrays)
    return {k: float(v) for k, v in arrays.items() if k.endswith("accuracy")}


def export_step(checkpoint, cache_dir, onnx_out, check_csv, n_images: int = 16) -> dict:
    """QONNX export and the check that QONNX execution predicts as PyTorch does on real test images."""
    model = load_trained(checkpoint)
    meta = load_checkpoint(checkpoint)["meta"]["data_meta"]
    export_qonnx_model(model, meta, onnx_out)
    images, labels = data_lib.sample_split(cache_dir, "test", n_images)
    row = check_export(model, meta, onnx_out, images, labels)
    pd.DataFrame([row]).to_csv(check_csv, index=False)
    if row["prediction_agreement"] < 1.0:
        raise RuntimeError(f"QONNX export of {checkpoint} disagrees with PyTorch on "
                           f"{1 - row['prediction_agreement']:.1%} of {row['images']} test images")
    return row


def prepare_step(onnx_path, out_dir, cache_dir, check_csv, n_images: int = 64, min_agreement: float = 0.95) -> dict:
    """FINN front end; checks the streamlined graph (integer thresholds, host scale) against QONNX.

    The check runs both graphs on ``n_images`` labelled test images and writes their prediction
    agreement and both accuracies to ``check_csv``; below ``min_agreement`` the build stops (a
    broken graph agrees on about 1/num_classes). The graphs should agree exactly: binary maps
    pad with -1 in the twin (``twindnn.models.BipolarPad``) as in FINN's XNOR layers. Before
    that, a CIFAR-10 W1A1 twin with zero padding agreed on only 87.5 % of 64 images.
    """
    dataflow = prepare_network(onnx_path, out_dir)
    images, labels = data_lib.sample_split(cache_dir, "test", n_images)
    scale = json.loads((Path(out_dir) / "host_output_scale.json").read_text())
    ref = qonnx_logits(onnx_path, images)
    streamlined = Path(out_dir) / "build" / "intermediate_models" / "step_residual_streamline.onnx"
    got = qonnx_logits(streamlined, images) * scale["logit_scale"] + scale["logit_bias"]
    row = {"images": len(images), "prediction_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
           "qonnx_accuracy": float((ref.argmax(1) == labels).mean()),
           "graph_accuracy": float((got.argmax(1) == labels).mean()),
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


def _design_point(points: pd.DataFrame, dp: dict) -> pd.Series:
    rows = points[points["gate"] == dp["gate"]]
    if rows.empty:
        rows = points[points["gate"] != "oracle"]
    i = (rows["target_value"].astype(float) - float(dp["target_value"])).abs().idxmin()
    return rows.loc[i]


def colocate_step(config: dict, board_name: str, twin: str, twin_dataflow, original_dataflow, operating_points,
                  twin_logits, original_logits, out_designs, out_system, out_folding_twin,
                  out_folding_original, out_folding_alone, log=sys.stderr) -> pd.DataFrame:
    """Folding ladders of both networks on one board, the co-location search, the system table,
    and the folding configs of the design point (co-located twin + original, original alone)."""
    hw = hw_config(config)
    board = load_board(board_name)
    util = float(hw["utilization"])
    ladders = {}
    for role, path in (("twin", twin_dataflow), ("original", original_dataflow)):
        model = co.specialize(path, board["part"])
        df, models = co.folding_ladder(model, board, float(hw["fps_start"]), float(hw["fps_factor"]),
                                       mvau_wwidth_max=int(hw["mvau_wwidth_max"]), utilization=util)
        df.insert(0, "network", role)
        ladders[role] = (df, models)
        print(f"{board_name} {role}: {len(df)} foldings, up to {df['estimated_throughput_fps'].max():.0f} FPS "
              "(FINN+ estimate)", file=log)
    designs = pd.concat([ladders["twin"][0], ladders["original"][0]])
    designs.insert(0, "board", board_name)
    designs.insert(1, "twin", twin)
    designs["budget_utilization"] = util
    designs["source"] = SOURCE_ESTIMATE
    designs.to_csv(out_designs, index_label="design")

    with np.load(twin_logits) as t, np.load(original_logits) as o:
        tl, ol = dict(t), dict(o)
    pts = operating_points_with(tl, ol, pd.read_csv(operating_points))
    table = system_rows(board, twin, ladders["twin"][0].reset_index(drop=True),
                        ladders["original"][0].reset_index(drop=True), pts, util)
    table.to_csv(out_system, index=False)

    fitting = table[table["fits"].astype(bool)]
    if fitting.empty:
        # Nothing fits together: build the slowest foldings anyway, so the tables show by how much.
        print(f"WARNING {board_name}: twin and original do not fit together in {util:.0%} of the board; "
              "building their slowest foldings (see fits_budget in the resource table)", file=log)
        twin_i, orig_i = 0, 0
    else:
        dp = _design_point(fitting, hw["design_point"])
        twin_i, orig_i = int(dp["twin_design"]), int(dp["original_design"])
        print(f"design point: {dp['gate']} target {dp['target_value']}, f={dp['forwarded_fraction']:.3f}, "
              f"TwinDNN {dp['twindnn_fps']:.0f} FPS vs original alone {dp['original_alone_fps']:.0f} FPS "
              "(FINN+ estimates)", file=log)
    co.save_folding(ladders["twin"][1][twin_i], out_folding_twin)
    co.save_folding(ladders["original"][1][orig_i], out_folding_original)
    alone = co.best_single(ladders["original"][0].reset_index(drop=True), board, util)
    co.save_folding(ladders["original"][1][alone["design"] if alone else 0], out_folding_alone)
    return table


def build_step(config: dict, board_name: str, dataflow_onnx, folding_json, out_dir, out_json) -> dict:
    """One network's FINN+ build on one board (estimates; with hardware.vivado the bitstream too)."""
    hw = hw_config(config)
    board = load_board(board_name)
    est = build_network(dataflow_onnx, out_dir, board, folding_json, vivado=bool(hw["vivado"]))
    est["board"] = board_name
    est["budget"] = board["resources"]
    est["source"] = SOURCE_ESTIMATE
    est["deploy_dir"] = str(Path(out_dir) / "deploy") if hw["vivado"] else None
    Path(out_json).write_text(json.dumps(est, indent=2))
    return est
