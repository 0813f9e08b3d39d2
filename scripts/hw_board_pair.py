"""Rule hw_board_pair: the pair on its board with the paper's work-sharing host loop (needs a board host)."""
from twindnn.config import BoardTimingStage
from twindnn.hardware.steps import board_pair_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, BoardTimingStage, board_pair_step)
