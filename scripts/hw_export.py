"""Rule hw_export: one network to QONNX, checked against PyTorch on real test images."""
from twindnn.config import ExportStage
from twindnn.hardware.steps import export_step
from twindnn.snakemake_io import run_rule

run_rule(snakemake, ExportStage, export_step)
