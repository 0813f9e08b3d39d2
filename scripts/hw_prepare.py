"""Rule hw_prepare: FINN+ front end (streamline, HW layers, dataflow partition) of one network."""
from twindnn.config import PrepareStage
from twindnn.hardware.steps import prepare_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, PrepareStage, prepare_step)
