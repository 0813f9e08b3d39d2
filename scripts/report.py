"""Snakemake script: the summary table and figures of one run."""

import json

import numpy as np
import pandas as pd

from twindnn import report
from twindnn.provenance import collect
from twindnn.snakemake_io import redirect_logs

snakemake = snakemake  # noqa: F821 -- injected by Snakemake


def tagged(paths, twins) -> pd.DataFrame:
    """Concatenate per-twin CSV files, adding the twin's name as a column."""
    if len(paths) != len(twins):
        raise ValueError(f"{len(paths)} files for {len(twins)} twins: {list(paths)}")
    return pd.concat([pd.read_csv(p).assign(twin=t) for p, t in zip(paths, twins)], ignore_index=True)


with redirect_logs(snakemake.log[0]):
    twins = list(snakemake.params.twins)
    inputs, outputs = snakemake.input, snakemake.output
    with open(inputs.data_meta) as f:
        data_meta = json.load(f)

    points = tagged(inputs.operating_points, twins)
    sweeps = tagged(inputs.sweeps, twins)
    throughput = tagged(inputs.throughput, twins)
    logits = {}
    for path, twin in zip(inputs.twin_logits, twins):
        with np.load(path) as npz:
            logits[twin] = {key: npz[key] for key in ("test_logits", "test_labels")}

    config = dict(snakemake.params.config)
    config.setdefault("run_name", snakemake.params.run_name)
    prov = collect(config, data_meta)
    summary = report.summary_table(points, throughput)
    devices = sorted(summary["throughput_device"].unique())
    where = f"{data_meta.get('dataset', 'unknown dataset')} / run {snakemake.params.run_name}"

    report.write_table(
        summary,
        outputs.summary_csv,
        outputs.summary_md,
        outputs.summary_tex,
        prov,
        title=f"TwinDNN operating points, {where} (test split)",
    )
    report.plot_accuracy_vs_forwarded(
        sweeps, outputs.fig_accuracy_forwarded, title=f"{where}: test accuracy vs forwarded fraction (cascade sweeps)"
    )
    report.plot_confidence_histograms(
        logits, outputs.fig_confidence, title=f"{where}: twin max-softmax confidence on test (twin logits)"
    )
    report.plot_accuracy_vs_throughput(
        summary,
        outputs.fig_accuracy_throughput,
        title=f"{where}: test accuracy vs throughput measured on {'; '.join(devices)}, not FPGA",
    )
    print(summary.to_string(index=False))
