"""Rule hw_prepare: FINN+ front end (streamline, HW layers, dataflow partition) of one network."""
from twindnn.config import PrepareStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import prepare_step

run_rule(snakemake, PrepareStage, prepare_step)
