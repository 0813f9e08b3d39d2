"""Start a training job in this process, or under torchrun when it is given several GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from . import pipeline


def run_training(kind: str, config: dict, paths: dict, twin: str | None = None, gpus: int = 0, log=sys.stderr):
    """Train the original (``kind='original'``) or ``twin``.

    ``paths``: cache_dir, checkpoint, metrics, work_dir, and original_checkpoint for a twin.
    With ``gpus > 1`` the job re-enters through ``torchrun --standalone`` (DistributedDataParallel).
    """
    if gpus > 1:
        work_dir = Path(paths["work_dir"])
        work_dir.mkdir(parents=True, exist_ok=True)
        config_path = work_dir / "config.json"
        config_path.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "twindnn.cli", "train", "--kind", kind, "--config", str(config_path)]
        for key, value in paths.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        if twin:
            cmd += ["--twin", twin]
        print("launching:", " ".join(cmd), file=log, flush=True)
        subprocess.run(cmd, check=True, stdout=log, stderr=log, env=os.environ.copy())
        return
    if kind == "original":
        pipeline.train_original(config, paths["cache_dir"], paths["checkpoint"], paths["metrics"],
                                paths["work_dir"], log=log)
    else:
        pipeline.train_twin(config, twin, paths["cache_dir"], paths["original_checkpoint"], paths["checkpoint"],
                            paths["metrics"], paths["work_dir"], log=log)
