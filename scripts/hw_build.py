"""Rule hw_build: FINN+ build of one network on one board (estimates; bitstream where Vivado is)."""
from twindnn.config import BuildStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import build_step

run_rule(snakemake, BuildStage, build_step, extra_outputs={"build_dir": snakemake.params.build_dir})
