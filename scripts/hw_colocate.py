"""Rule hw_colocate: folding search of twin + original on one board, system model, design-point foldings."""
import sys

from twindnn.hardware.pipeline import colocate_step
from twindnn.snakemake_io import redirect_logs

i, o, w = snakemake.input, snakemake.output, snakemake.wildcards
with redirect_logs(snakemake.log[0]):
    colocate_step(snakemake.params.config, w.board, w.twin, i.twin_dataflow, i.original_dataflow,
                  i.operating_points, i.twin_logits, i.original_logits, o.designs, o.system, o.folding_twin,
                  o.folding_original, o.folding_original_alone, log=sys.stderr)
