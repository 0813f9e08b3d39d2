"""Snakemake script: sweep the gates of one twin and choose its operating points."""

from pathlib import Path

import numpy as np

from twindnn.cascade import run_cascade
from twindnn.snakemake_io import redirect_logs

snakemake = snakemake  # noqa: F821 -- injected by Snakemake


def load_logits(path) -> dict:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


with redirect_logs(snakemake.log[0]):
    twin = load_logits(snakemake.input.twin_logits)
    original = load_logits(snakemake.input.original_logits)
    sweep, points = run_cascade(
        twin,
        original,
        gates=list(snakemake.params.gates),
        targets=[float(t) for t in snakemake.params.targets],
    )
    for path in (snakemake.output.sweep, snakemake.output.operating_points):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(snakemake.output.sweep, index=False)
    points.to_csv(snakemake.output.operating_points, index=False)
    print(f"{len(sweep)} sweep rows, {len(points)} operating points")
    print(points.to_string(index=False))
