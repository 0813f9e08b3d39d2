"""The software half's steps that the rule scripts call, each ``step(stage, inputs, outputs)``.

``stage`` is the rule's config object (:mod:`twindnn.config`); ``inputs`` and ``outputs`` map the
rule's input/output names to paths (a rule's ``snakemake.input`` / ``snakemake.output``, or a dict).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torchvision.transforms.v2.functional import center_crop

from .. import answer as answer_lib
from .. import data as data_lib
from .. import report
from ..artifacts import load_npz, save_logits
from ..cascade import run_cascade
from ..config import (
    AnchorsStage,
    AnswerStage,
    CascadeStage,
    DataStage,
    LogitsStage,
    ReportStage,
    ThroughputStage,
    TrainStage,
)
from ..models import Normalize, QuantSpec, build_model, checkpoint_meta, create_twin, input_meta, load_trained
from ..operating_points import SELECTIONS
from ..provenance import collect, file_sha256, provenance_footer
from ..table_io import display_frame, html_page, html_table, markdown_table, write_table
from ..throughput import measure_throughput
from ..train import fit

# --------------------------------------------------------------------------- steps


def train_original(stage: TrainStage, inputs: Mapping, outputs: Mapping, log=sys.stderr, stop_after_epoch=None,
                   progress=None):
    """inputs: meta (the dataset cache's meta.json), train_images/labels, val_images/labels;
    outputs: checkpoint, metrics, work_dir."""
    meta_in = input_meta(data_lib.read_meta(inputs["meta"]), stage.input_size)
    cfg = stage.fit_config()
    torch.manual_seed(stage.seed)
    model = build_model("original", stage.model, meta_in)
    train_set, val_set = data_lib.training_datasets(inputs, meta_in, cfg["augment"])
    return fit(model, train_set, val_set, cfg, meta_in["mean"], meta_in["std"], outputs["work_dir"],
               outputs["checkpoint"], outputs["metrics"], checkpoint_meta("original", stage.model, meta_in),
               log=log, stop_after_epoch=stop_after_epoch,
               fingerprint=stage.fingerprint(data=file_sha256(inputs["meta"])), progress=progress)


def train_twin(stage: TrainStage, inputs: Mapping, outputs: Mapping, log=sys.stderr, stop_after_epoch=None,
               progress=None):
    """QAT of one twin, initialized from (and optionally distilled from) the trained original.

    inputs: meta, train_images/labels, val_images/labels, original (its checkpoint); outputs: checkpoint,
    metrics, work_dir.
    """
    spec = QuantSpec.from_config(stage.twin_name, stage.twin)
    original, source = load_trained(inputs["original"])
    cfg = stage.fit_config()
    torch.manual_seed(stage.seed)
    twin = create_twin(original, spec, init_from_original=True)
    meta_in = source["data_meta"]
    train_set, val_set = data_lib.training_datasets(inputs, meta_in, cfg["augment"])
    teacher = original if float(cfg["distill_alpha"]) > 0 else None
    # The twin's fingerprint includes the original it starts from: a retrained original retrains the twin.
    fingerprint = stage.fingerprint(data=file_sha256(inputs["meta"]), original=file_sha256(inputs["original"]))
    return fit(twin, train_set, val_set, cfg, meta_in["mean"], meta_in["std"], outputs["work_dir"],
               outputs["checkpoint"], outputs["metrics"], checkpoint_meta("twin", source["model_cfg"], meta_in, spec),
               teacher=teacher, log=log, stop_after_epoch=stop_after_epoch, fingerprint=fingerprint, progress=progress)


def logits(stage: LogitsStage, inputs: Mapping, outputs: Mapping) -> dict:
    """inputs: checkpoint, meta, val_images/labels, test_images/labels; outputs: logits (npz)."""
    return save_logits(inputs["checkpoint"], inputs, outputs["logits"], device=stage.device)


def prepare_data(stage: DataStage, inputs: Mapping, outputs: Mapping, workers: int = 1) -> dict:
    """outputs: meta (the cache's meta.json) and the split arrays <split>_images, <split>_labels."""
    meta = data_lib.prepare_dataset_files(stage.dataset, outputs, workers=workers)
    return {k: v for k, v in meta.items() if k != "classes"}


def cascade(stage: CascadeStage, inputs: Mapping, outputs: Mapping) -> str:
    """Sweep the gates of one twin, choose its operating points on val. inputs: twin_logits,
    original_logits; outputs: sweep, operating_points (CSV)."""
    sweep, points = run_cascade(load_npz(inputs["twin_logits"]), load_npz(inputs["original_logits"]),
                                gates=list(stage.gates), targets=dict(stage.targets), selections=SELECTIONS,
                                delta=stage.delta)
    for path in (outputs["sweep"], outputs["operating_points"]):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(outputs["sweep"], index=False)
    points.to_csv(outputs["operating_points"], index=False)
    notes = [f"WARNING: the guaranteed rule can certify {p.target_kind} {p.target_value:g} ({p.gate} gate) at "
             f"delta {p.delta:g} only by forwarding everything: the val split is too small for this target "
             "(raise dataset.val_subset or dataset.val_fraction, loosen the target, or raise cascade.delta)"
             for p in points[points["selection"] == "guaranteed"].itertuples() if p.val_forwarded_fraction >= 1]
    return "\n".join([f"{len(sweep)} sweep rows, {len(points)} operating points", *notes,
                      points.to_string(index=False)])


def throughput(stage: ThroughputStage, inputs: Mapping, outputs: Mapping) -> str:
    """Time the original, the twin and the real cascade on this machine. inputs: original, twin
    (checkpoints), images (the cached test images); outputs: throughput (CSV)."""
    original, meta = load_trained(inputs["original"])
    twin, _ = load_trained(inputs["twin"])
    data_meta = meta["data_meta"]
    images = torch.from_numpy(np.array(np.load(inputs["images"], mmap_mode="r")[: stage.batch_size]))
    images = images.permute(0, 3, 1, 2)
    size = data_meta["image_size"]
    if images.shape[-1] != size:  # ImageNet: the cache is larger than the network input
        images = center_crop(images, [size, size])
    table = measure_throughput(original, twin, images,
                               forwarded_fractions=stage.forwarded_fractions, batch_size=stage.batch_size,
                               warmup=stage.warmup, repeats=stage.repeats, device=stage.device, gate=stage.gate,
                               preprocess=Normalize(data_meta["mean"], data_meta["std"]))
    table.to_csv(outputs["throughput"], index=False)
    return table.to_string(index=False)


def _tagged(paths, twins) -> pd.DataFrame:
    """Concatenate per-twin CSV files, adding the twin's name as a column."""
    if len(paths) != len(twins):
        raise ValueError(f"{len(paths)} files for {len(twins)} twins: {list(paths)}")
    return pd.concat([pd.read_csv(p).assign(twin=t) for p, t in zip(paths, twins)], ignore_index=True)


def report_tables(stage: ReportStage, inputs: Mapping, outputs: Mapping) -> str:
    """The summary table and figures of one run (see workflow/rules/report.smk for the names)."""
    twins = list(stage.twins)
    data_meta = data_lib.read_meta(inputs["data_meta"])
    summary = report.summary_table(_tagged(inputs["operating_points"], twins), _tagged(inputs["throughput"], twins))
    where = f"{data_meta['dataset'] if 'dataset' in data_meta else 'unknown dataset'} / run {stage.run_name}"
    provenance = collect(stage.provenance(), data_meta, config_digest=stage.config_sha256)
    write_table(summary, outputs["summary_csv"], outputs["summary_md"], outputs["summary_tex"], provenance,
                title=f"TwinDNN operating points, {where} (test split)")
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


def compare_anchors(stage: AnchorsStage, inputs: Mapping, outputs: Mapping) -> str:
    """This run's recovery, accuracies and FPGA gain beside the published anchors."""
    anchors = yaml.safe_load(Path(inputs["anchors"]).read_text())
    data_meta = data_lib.read_meta(inputs["data_meta"])
    twin_bits = {}
    for name, entry in stage.twins.items():
        spec = QuantSpec.from_config(name, entry)
        twin_bits[name] = ("T" if spec.ternary else spec.weight_bits, spec.act_bits)
    headline = pd.read_csv(inputs["fpga_headline"]) if "fpga_headline" in inputs else None
    table = report.anchor_table(pd.read_csv(inputs["summary"]), anchors, twin_bits, data_meta["dataset"], headline,
                                gate=stage.gate, design=stage.design)
    provenance = collect(stage.provenance(), data_meta, config_digest=stage.config_sha256)
    write_table(table, outputs["csv"], outputs["md"], outputs["tex"], provenance,
                title=f"{stage.run_name}: this run beside the published anchors")
    return table.to_string(index=False)


def _answer_of(stage: AnswerStage, table_path, test_count: int) -> pd.DataFrame:
    table = pd.read_csv(table_path)
    if stage.hardware:
        return answer_lib.fpga_answer(table, stage.gate, stage.target_value, stage.scheduler, stage.selection,
                                      test_count)
    return answer_lib.software_answer(table, stage.gate, stage.target_value, stage.selection, test_count)


def answer(stage: AnswerStage, inputs: Mapping, outputs: Mapping, progress=None) -> str:
    """The run's answer at the design point (:mod:`twindnn.answer`), beside the reference run's when
    one is configured: CSV, Markdown, an HTML fragment for the report's front page, and the console.

    inputs: data_meta, table (hw_headline.csv, or summary.csv without the FPGA half), optionally
    reference (the same table of the reference run); outputs: csv, md, html (a fragment: a table and
    its notes, with a style scoped to it)."""
    data_meta = data_lib.read_meta(inputs["data_meta"])
    test_count = int(data_meta.get("test_count", 0))
    table = _answer_of(stage, inputs["table"], test_count)
    notes = []
    if stage.reference_run:
        if "reference" in inputs:
            reference = _answer_of(stage, inputs["reference"], test_count)
            table = answer_lib.with_reference(table, reference, stage.reference_run)
            notes.append(f"Beside the reference run {stage.reference_run} ({inputs['reference']}): this run minus "
                         "the reference, and whether the reference lies inside this run's 95 % interval.")
        else:
            notes.append(f"Reference run {stage.reference_run}: no finished run found under its folder, so "
                         "nothing is set beside this one.")
    source = "FINN+ analytical estimates (no board)" if stage.hardware else "measured on this machine, not an FPGA"
    notes.append(f"Accuracies: test split ({test_count} images), thresholds chosen on val; 95 % intervals "
                 f"(Clopper-Pearson for the original and the twin). Throughput: {source}, except rows whose "
                 "source says measured on board.")
    table.to_csv(outputs["csv"], index=False)
    provenance = collect(stage.provenance(), data_meta, config_digest=stage.config_sha256)
    shown = answer_lib.readable(table)
    title = f"TwinDNN's answer, run {stage.run_name} on {stage.dataset}"
    Path(outputs["md"]).write_text(f"## {title}\n\n{markdown_table(shown)}\n\n" + "\n\n".join(notes)
                                   + f"\n\n{provenance_footer(provenance)}\n")
    # a fragment, with its style scoped to its own table: the report's front page includes it as it is
    Path(outputs["html"]).write_text(html_table(answer_lib.by_column(shown), title,
                                                [*notes, provenance_footer(provenance)],
                                                css_class="twindnn-answer", styled=True))
    text = answer_lib.console_text(table, stage.run_name, stage.dataset) + "\n" + "\n".join(notes)
    if progress is not None:
        print(text, file=progress, flush=True)
    return text


def report_pages(inputs: Mapping, outputs: Mapping) -> str:
    """Each table of the run as an HTML page for the report, so that its numbers show in the page
    (not only as a download): ``outputs[name]`` from ``inputs[name]`` (CSV), titled from the
    Markdown beside it (``inputs[name + "_md"]``, whose provenance line becomes the note)."""
    done = []
    for name, out in outputs.items():
        df = pd.read_csv(inputs[name])
        title, notes = name.replace("_", " "), []
        md = inputs.get(f"{name}_md")
        if md and Path(md).exists():
            lines = Path(md).read_text().splitlines()
            title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), title)
            notes = [ln for ln in lines if ln and not ln.startswith(("|", "#"))]
        Path(out).write_text(html_page(display_frame(df), title, notes))
        done.append(f"{name}: {len(df)} rows -> {out}")
    return "\n".join(done)
