"""Rule hw_prepare: FINN+ front end (streamline, HW layers, dataflow partition) of one network."""
from pathlib import Path

from twindnn.hardware.pipeline import prepare_step
from twindnn.snakemake_io import redirect_logs

with redirect_logs(snakemake.log[0]):
    print(prepare_step(snakemake.input.onnx, Path(snakemake.output.dataflow).parent,
                       Path(snakemake.input.meta).parent, snakemake.output.check,
                       n_images=snakemake.params.check_images, min_agreement=snakemake.params.min_agreement))
