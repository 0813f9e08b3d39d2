"""The steps the rule scripts call, each ``step(stage, inputs, outputs)``, and the glue they share.

``stage`` is the rule's config object (:mod:`twindnn.config`); ``inputs`` and ``outputs`` map the
rule's input/output names to paths (a rule's ``snakemake.input`` / ``snakemake.output``, or a dict).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from . import data as data_lib
from .config import CascadeStage, DataStage, LogitsStage, ReportStage, ThroughputStage, TrainStage
from .models import TwinSpec, build_model, create_twin, load_checkpoint, load_trained
from .train import CachedImages, fit, pick_device, predict_logits


# --------------------------------------------------------------------------- shared glue


def cache_dir(inputs: Mapping) -> Path:
    """The dataset cache folder of a step: where its ``meta`` input lies."""
    return Path(inputs["meta"]).parent


def load_npz(path) -> dict:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def file_sha256(path) -> str:
    """Fingerprint of an input file (a dataset's meta.json, an original's checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def input_meta(data_meta: dict, input_size: int | None = None) -> dict:
    """Dataset facts a network is built from; ``input_size`` crops the cached images (ImageNet)."""
    meta = {k: data_meta[k] for k in ("num_classes", "channels", "image_size", "mean", "std", "dataset")}
    meta["image_size"] = int(input_size or data_meta["image_size"])
    return meta


def training_datasets(cache_dir, data_meta: dict, augment: str | None) -> tuple[CachedImages, CachedImages]:
    """(train, val) datasets of the cache, at the network's input size."""
    size = data_meta["image_size"]
    train = CachedImages(*data_lib.load_split(cache_dir, "train"), augment, size)
    return train, CachedImages(*data_lib.load_split(cache_dir, "val"), None, size)


def network_meta(kind: str, model_cfg: dict, data_meta: dict, twin_spec: TwinSpec | None = None, **extra) -> dict:
    """The metadata a checkpoint carries: enough for :func:`twindnn.models.load_trained` to rebuild it."""
    if kind != "original":  # a twin never loads the original's pretrained weights again
        model_cfg = {k: v for k, v in model_cfg.items() if k != "pretrained_file"}
    return {"kind": kind, "model_cfg": model_cfg, "data_meta": data_meta,
            "twin_spec": twin_spec.__dict__ if twin_spec else None, **extra}


def save_logits(checkpoint, cache_dir, out_npz, device: str = "auto") -> dict:
    """Logits, labels and accuracy of a trained network on the val and test splits, as npz."""
    model = load_trained(checkpoint)
    meta_in = load_checkpoint(checkpoint)["meta"]["data_meta"]
    device = pick_device(device)
    arrays = {}
    for split in ("val", "test"):
        images, labels = data_lib.load_split(cache_dir, split)
        logits = predict_logits(model, images, meta_in["mean"], meta_in["std"], device=device,
                                out_size=meta_in["image_size"])
        arrays[f"{split}_logits"], arrays[f"{split}_labels"] = logits, labels.astype(np.int64)
        arrays[f"{split}_accuracy"] = np.float64(accuracy(logits, labels))
    Path(out_npz).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_npz, **arrays)
    return {k: float(v) for k, v in arrays.items() if k.endswith("accuracy")}


# --------------------------------------------------------------------------- steps


def train_original(stage: TrainStage, inputs: Mapping, outputs: Mapping, log=sys.stderr, stop_after_epoch=None):
    """inputs: meta (the dataset cache's meta.json); outputs: checkpoint, metrics, work_dir."""
    cache = cache_dir(inputs)
    meta_in = input_meta(data_lib.load_meta(cache), stage.input_size)
    cfg = stage.fit_config()
    torch.manual_seed(stage.seed)
    model = build_model("original", stage.model, meta_in)
    train_set, val_set = training_datasets(cache, meta_in, cfg.get("augment"))
    return fit(model, train_set, val_set, cfg, meta_in["mean"], meta_in["std"], outputs["work_dir"],
               outputs["checkpoint"], outputs["metrics"], network_meta("original", stage.model, meta_in),
               log=log, stop_after_epoch=stop_after_epoch,
               fingerprint=stage.fingerprint(data=file_sha256(inputs["meta"])))


def train_twin(stage: TrainStage, inputs: Mapping, outputs: Mapping, log=sys.stderr, stop_after_epoch=None):
    """QAT of one twin, initialized from (and optionally distilled from) the trained original.

    inputs: meta, original (its checkpoint); outputs: checkpoint, metrics, work_dir.
    """
    cache = cache_dir(inputs)
    spec = TwinSpec.from_config(stage.twin_name, stage.twin)
    original = load_trained(inputs["original"])
    source = load_checkpoint(inputs["original"])["meta"]
    cfg = stage.fit_config()
    torch.manual_seed(stage.seed)
    twin = create_twin(original, spec, init_from_original=True)
    meta_in = source["data_meta"]
    train_set, val_set = training_datasets(cache, meta_in, cfg.get("augment"))
    teacher = original if float(cfg.get("distill_alpha", 0.0)) > 0 else None
    # The twin's fingerprint includes the original it starts from: a retrained original retrains the twin.
    fingerprint = stage.fingerprint(data=file_sha256(inputs["meta"]), original=file_sha256(inputs["original"]))
    return fit(twin, train_set, val_set, cfg, meta_in["mean"], meta_in["std"], outputs["work_dir"],
               outputs["checkpoint"], outputs["metrics"], network_meta("twin", source["model_cfg"], meta_in, spec),
               teacher=teacher, log=log, stop_after_epoch=stop_after_epoch, fingerprint=fingerprint)


def logits(stage: LogitsStage, inputs: Mapping, outputs: Mapping) -> dict:
    """inputs: checkpoint, meta; outputs: logits (npz)."""
    return save_logits(inputs["checkpoint"], cache_dir(inputs), outputs["logits"], device=stage.device)


def prepare_data(stage: DataStage, inputs: Mapping, outputs: Mapping, workers: int = 1) -> dict:
    """outputs: meta (the cache's meta.json; the split arrays go beside it)."""
    meta = data_lib.prepare_dataset(stage.dataset, Path(outputs["meta"]).parent, workers=workers)
    return {k: v for k, v in meta.items() if k != "classes"}


def cascade(stage: CascadeStage, inputs: Mapping, outputs: Mapping) -> str:
    """Sweep the gates of one twin, choose its operating points on val. inputs: twin_logits,
    original_logits; outputs: sweep, operating_points (CSV)."""
    from .cascade import run_cascade

    sweep, points = run_cascade(load_npz(inputs["twin_logits"]), load_npz(inputs["original_logits"]),
                                gates=list(stage.gates), targets=list(stage.targets))
    for path in (outputs["sweep"], outputs["operating_points"]):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(outputs["sweep"], index=False)
    points.to_csv(outputs["operating_points"], index=False)
    return f"{len(sweep)} sweep rows, {len(points)} operating points\n{points.to_string(index=False)}"


def throughput(stage: ThroughputStage, inputs: Mapping, outputs: Mapping) -> str:
    """Time the original, the twin and the real cascade on this machine. inputs: original, twin
    (checkpoints), images (the cached test images); outputs: throughput (CSV)."""
    from .models import Normalize
    from .throughput import measure_throughput

    data_meta = load_checkpoint(inputs["original"])["meta"]["data_meta"]
    images = torch.from_numpy(np.array(np.load(inputs["images"], mmap_mode="r")[: stage.batch_size]))
    images = images.permute(0, 3, 1, 2)
    size = data_meta["image_size"]
    if images.shape[-1] != size:  # ImageNet: the cache is larger than the network input
        from torchvision.transforms.v2.functional import center_crop

        images = center_crop(images, [size, size])
    table = measure_throughput(load_trained(inputs["original"]), load_trained(inputs["twin"]), images,
                               forwarded_fractions=stage.forwarded_fractions, batch_size=stage.batch_size,
                               warmup=stage.warmup, repeats=stage.repeats, device=stage.device, gate=stage.gate,
                               preprocess=Normalize(data_meta["mean"], data_meta["std"]))
    table.to_csv(outputs["throughput"], index=False)
    return table.to_string(index=False)


def _tagged(paths, twins) -> "pd.DataFrame":
    """Concatenate per-twin CSV files, adding the twin's name as a column."""
    import pandas as pd

    if len(paths) != len(twins):
        raise ValueError(f"{len(paths)} files for {len(twins)} twins: {list(paths)}")
    return pd.concat([pd.read_csv(p).assign(twin=t) for p, t in zip(paths, twins)], ignore_index=True)


def report_tables(stage: ReportStage, inputs: Mapping, outputs: Mapping) -> str:
    """The summary table and figures of one run (see workflow/rules/report.smk for the names)."""
    from . import report
    from .provenance import collect

    twins = list(stage.twins)
    data_meta = data_lib.load_meta(Path(inputs["data_meta"]).parent)
    summary = report.summary_table(_tagged(inputs["operating_points"], twins), _tagged(inputs["throughput"], twins))
    where = f"{data_meta.get('dataset', 'unknown dataset')} / run {stage.run_name}"
    report.write_table(summary, outputs["summary_csv"], outputs["summary_md"], outputs["summary_tex"],
                       collect(stage.config, data_meta), title=f"TwinDNN operating points, {where} (test split)")
    report.plot_accuracy_vs_forwarded(_tagged(inputs["sweeps"], twins), outputs["fig_accuracy_forwarded"],
                                      title=f"{where}: test accuracy vs forwarded fraction (cascade sweeps)")
    logits = {t: load_npz(p) for p, t in zip(inputs["twin_logits"], twins)}
    report.plot_confidence_histograms(logits, outputs["fig_confidence"], gate=stage.gate,
                                      title=f"{where}: twin confidence ({stage.gate} gate) on test (twin logits)")
    devices = sorted(summary["throughput_device"].unique())
    report.plot_accuracy_vs_throughput(
        summary, outputs["fig_accuracy_throughput"],
        title=f"{where}: test accuracy vs throughput measured on {'; '.join(devices)}, not FPGA")
    return summary.to_string(index=False)


def compare_anchors(stage: ReportStage, inputs: Mapping, outputs: Mapping) -> str:
    """This run's recovery, accuracies and FPGA gain beside the published anchors."""
    import pandas as pd
    import yaml

    from . import report
    from .provenance import collect

    anchors = yaml.safe_load(Path(inputs["anchors"]).read_text())
    data_meta = data_lib.load_meta(Path(inputs["data_meta"]).parent)
    twin_bits = {}
    for name, entry in stage.twins.items():
        spec = TwinSpec.from_config(name, entry)
        twin_bits[name] = ("T" if spec.ternary else spec.weight_bits, spec.act_bits)
    headline = pd.read_csv(inputs["fpga_headline"]) if inputs.get("fpga_headline") else None
    table = report.anchor_table(pd.read_csv(inputs["summary"]), anchors, twin_bits, data_meta["dataset"], headline,
                                gate=stage.gate, design=report.run_design(stage.config))
    report.write_table(table, outputs["csv"], outputs["md"], outputs["tex"], collect(stage.config, data_meta),
                       title=f"{stage.run_name}: this run beside the published anchors")
    return table.to_string(index=False)
