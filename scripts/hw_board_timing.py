"""Rule hw_board_timing: time one deployed accelerator on its board over SSH (needs a board host)."""
from twindnn.config import BoardTimingStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import board_timing_step

run_rule(snakemake, BoardTimingStage, board_timing_step)
