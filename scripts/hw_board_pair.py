"""Rule hw_board_pair: the pair on its board with the paper's work-sharing host loop (needs a board host)."""
from twindnn.config import BoardTimingStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import board_pair_step

run_rule(snakemake, BoardTimingStage, board_pair_step)
