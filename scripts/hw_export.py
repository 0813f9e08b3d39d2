"""Rule hw_export: one network to QONNX, checked against PyTorch on real test images."""
from pathlib import Path

from twindnn.hardware.pipeline import export_step
from twindnn.snakemake_io import redirect_logs

with redirect_logs(snakemake.log[0]):
    print(export_step(snakemake.input.checkpoint, Path(snakemake.input.meta).parent, snakemake.output.onnx,
                      snakemake.output.check, int(snakemake.params.check_images)))
