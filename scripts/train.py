"""Rules train_original and train_twin: train one network (torchrun when given several GPUs)."""
import sys

from twindnn.config import TrainStage
from twindnn.launch import run_training
from twindnn.snakemake_io import run_rule

run_rule(snakemake, TrainStage, run_training, extra_outputs={"work_dir": snakemake.params.work_dir},
         gpus=int(snakemake.resources.get("gpu", 0)), log=sys.stderr)
