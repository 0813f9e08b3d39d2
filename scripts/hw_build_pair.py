"""Rule hw_build_pair: the design point's twin and original as one FINN+ multi-DNN Parallel design."""
from twindnn.config import PairBuildStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import build_pair_step

run_rule(snakemake, PairBuildStage, build_pair_step, extra_outputs={"build_dir": snakemake.params.build_dir})
