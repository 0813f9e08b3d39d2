"""Rule hw_build: FINN+ build of one network on one board (estimates; bitstream where Vivado is)."""
from twindnn.config import BuildStage
from twindnn.hardware.steps import build_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, BuildStage, build_step, extra_outputs={"build_dir": snakemake.params.build_dir})
