"""Rule hw_export: one network to QONNX, checked against PyTorch on real test images."""
from twindnn.config import ExportStage
from twindnn.snakemake_io import run_rule
from twindnn.steps.fpga import export_step

run_rule(snakemake, ExportStage, export_step)
