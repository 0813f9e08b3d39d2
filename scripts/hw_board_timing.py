"""Rule hw_board_timing: time one deployed accelerator on its board over SSH (needs a board host)."""
from twindnn.config import BoardTimingStage
from twindnn.hardware.steps import board_timing_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, BoardTimingStage, board_timing_step)
