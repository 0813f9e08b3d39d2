"""Rule compare_anchors: this run's recovery, accuracies and FPGA gain beside the published anchors."""
from twindnn.config import AnchorsStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.software import compare_anchors

run_rule(snakemake, AnchorsStage, compare_anchors)
