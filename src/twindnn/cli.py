"""Command line: ``python -m twindnn.cli train ...`` (what torchrun launches for multi-GPU jobs)."""

from __future__ import annotations

import argparse
import json
import sys

from . import pipeline


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="twindnn")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the original or a twin (one process of a torchrun job)")
    train.add_argument("--kind", choices=["original", "twin"], required=True)
    train.add_argument("--config", required=True, help="config as JSON")
    train.add_argument("--cache-dir", required=True)
    train.add_argument("--checkpoint", required=True)
    train.add_argument("--metrics", required=True)
    train.add_argument("--work-dir", required=True)
    train.add_argument("--original-checkpoint")
    train.add_argument("--twin")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = json.load(f)
    if args.kind == "original":
        pipeline.train_original(config, args.cache_dir, args.checkpoint, args.metrics, args.work_dir)
    else:
        pipeline.train_twin(config, args.twin, args.cache_dir, args.original_checkpoint, args.checkpoint,
                            args.metrics, args.work_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
