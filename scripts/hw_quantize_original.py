"""Rule hw_quantize_original: the 8-bit original (PTQ, optional short QAT) and its logits."""
import sys
from pathlib import Path

from twindnn.hardware.pipeline import quantize_original_step
from twindnn.snakemake_io import redirect_logs

with redirect_logs(snakemake.log[0]):
    acc = quantize_original_step(snakemake.params.config, snakemake.input.original, Path(snakemake.input.meta).parent,
                                 snakemake.output.checkpoint, snakemake.output.logits, snakemake.params.work_dir,
                                 log=sys.stderr)
    print(acc)
