"""Rule hw_colocate: folding search of twin + original on one board, system model, design-point foldings."""
from twindnn.config import ColocateStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import colocate_step

run_rule(snakemake, ColocateStage, colocate_step, twin=snakemake.wildcards.twin)
