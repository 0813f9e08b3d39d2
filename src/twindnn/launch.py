"""Start a training job in this process, or under torchrun when it is given several GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from .config import TrainStage
from .steps import software as steps


def job_spec(stage: TrainStage, inputs: Mapping, outputs: Mapping) -> dict:
    """What ``python -m twindnn.cli train --job`` reads: the stage, its files, this process's torch threads."""
    return {"stage": stage.to_params(), "inputs": {k: str(v) for k, v in inputs.items()},
            "outputs": {k: str(v) for k, v in outputs.items()}, "threads": torch.get_num_threads()}


def run_training(stage: TrainStage, inputs: Mapping, outputs: Mapping, gpus: int = 0, log=sys.stderr,
                 progress=None):
    """Train the network ``stage`` describes (the original or a twin); see :mod:`twindnn.steps.software`.
    ``progress``: where a line per epoch goes (the console of a Snakemake job).

    With ``gpus > 1`` the job re-enters through ``torchrun --standalone`` (DistributedDataParallel);
    its epoch lines then go to the log only.
    """
    step = steps.train_original if stage.kind == "original" else steps.train_twin
    if gpus <= 1:
        return step(stage, inputs, outputs, log=log, progress=progress)
    work_dir = Path(outputs["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    job = work_dir / "job.json"
    job.write_text(json.dumps(job_spec(stage, inputs, outputs)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "twindnn.cli", "train", "--job", str(job)]
    print("launching:", " ".join(cmd), file=log, flush=True)
    subprocess.run(cmd, check=True, stdout=log, stderr=log, env=os.environ.copy())
