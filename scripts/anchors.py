"""Rule compare_anchors: this run's recovery, accuracies and FPGA gain beside the published anchors."""
from twindnn.config import ReportStage
from twindnn.pipeline import compare_anchors
from twindnn.snakemake_io import run_rule

run_rule(snakemake, ReportStage, compare_anchors)
