"""Rule hw_colocate: folding search of twin + original on one board, system model, design-point foldings."""
from twindnn.config import ColocateStage
from twindnn.hardware.steps import colocate_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, ColocateStage, colocate_step, twin=snakemake.wildcards.twin)
