"""Rules train_original and train_twin: train one network (torchrun when given several GPUs)."""
import sys
from pathlib import Path

from twindnn.launch import run_training
from twindnn.snakemake_io import redirect_logs

twin = snakemake.wildcards.get("twin")
paths = {
    "cache_dir": Path(snakemake.input.meta).parent,
    "checkpoint": snakemake.output.checkpoint,
    "metrics": snakemake.output.metrics,
    "work_dir": snakemake.params.work_dir,
}
if twin:
    paths["original_checkpoint"] = snakemake.input.original
with redirect_logs(snakemake.log[0]):
    run_training("twin" if twin else "original", snakemake.params.config, paths, twin=twin,
                 gpus=int(snakemake.resources.get("gpu", 0)), log=sys.stderr)
