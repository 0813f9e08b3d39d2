"""Command line: ``python -m twindnn.cli train --job job.json`` (what torchrun launches for multi-GPU jobs)."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from .config import TrainStage
from .launch import run_training


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="twindnn")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the original or a twin (one process of a torchrun job)")
    train.add_argument("--job", required=True, help="JSON with the stage config, inputs and outputs")
    args = parser.parse_args(argv)
    with open(args.job) as f:
        job = json.load(f)
    if job["threads"]:  # the launching job's torch threads: results do not depend on who runs an epoch
        torch.set_num_threads(int(job["threads"]))
    run_training(TrainStage.from_params(job["stage"]), job["inputs"], job["outputs"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
