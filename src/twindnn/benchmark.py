"""Training-speed benchmark: is data loading the bottleneck?

For the original and one twin it measures training images/s through the real
pipeline (cache -> DataLoader -> augmentation -> forward/backward/step) and the
raw forward/backward/step rate on synthetic tensors already on the device, and
prints the ratio. A ratio near 1 means the model is the limit; well below 1,
the data pipeline starves the device (raise compute.num_workers).

    python -m twindnn.benchmark --config config/config.yaml --cache results/<run>/data
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader

from . import data as data_lib
from .models import Normalize, TwinSpec, build_model, create_twin
from .config import validated
from .pipeline import input_meta
from .train import CachedImages, _autocast, make_optimizer, pick_device


def _step(model, optimizer, x, y, device, amp=True):
    with _autocast(device, amp):
        loss = F.cross_entropy(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(model, optimizer, batches, device, normalize, channels_last, steps, warmup, amp=True):
    """Images/s over ``steps`` training steps after ``warmup`` untimed ones."""
    model.train()
    seen, start = 0, None
    for i, (images, labels) in enumerate(batches):
        if i == warmup:
            _sync(device)
            start, seen = time.perf_counter(), 0
        if i >= warmup + steps:
            break
        x = normalize(images.to(device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _step(model, optimizer, x, labels.to(device, non_blocking=True), device, amp)
        seen += len(labels)
    _sync(device)
    return seen / (time.perf_counter() - start)


def benchmark_training(config: dict, cache_dir, steps: int = 20, warmup: int = 3, twin: str | None = None,
                       device: str = "auto") -> pd.DataFrame:
    meta = input_meta(data_lib.load_meta(cache_dir), config["dataset"].get("input_size"))
    device = pick_device(device)
    images, labels = data_lib.load_split(cache_dir, "train")
    section = config["original"]
    model_cfg = {k: section[k] for k in ("model", "model_kwargs") if k in section}
    original = build_model("original", model_cfg, meta)
    twin = twin or next(iter(config["twins"]))
    networks = {
        "original": (original, config["original"]["training"]),
        f"twin_{twin}": (create_twin(original, TwinSpec.from_config(twin, config["twins"][twin])), config["twin"]["training"]),
    }
    workers = int(config.get("compute", {}).get("num_workers", 0))
    normalize = Normalize(meta["mean"], meta["std"]).to(device)
    rows = []
    for name, (model, train_cfg) in networks.items():
        amp = train_cfg.get("amp", True)
        channels_last = device.type == "cuda" and train_cfg.get("channels_last", True)
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, train_cfg)
        batch = int(train_cfg["batch_size"])
        dataset = CachedImages(images, labels, train_cfg.get("augment"), meta["image_size"])
        loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        pipeline_rate = _rate(model, optimizer, iter(loader), device, normalize, channels_last, steps, warmup, amp)
        x = torch.randint(0, 256, (batch, meta["channels"], meta["image_size"], meta["image_size"]),
                          dtype=torch.uint8, device=device)
        y = torch.randint(0, meta["num_classes"], (batch,), device=device)
        synthetic = ((x, y) for _ in range(steps + warmup))
        raw_rate = _rate(model, optimizer, synthetic, device, normalize, channels_last, steps, warmup, amp)
        rows.append({"network": name, "batch_size": batch, "amp": amp and device.type == "cuda",
                     "channels_last": channels_last, "num_workers": workers, "device": str(device),
                     "pipeline_images_per_s": pipeline_rate, "synthetic_images_per_s": raw_rate,
                     "pipeline_to_synthetic_ratio": pipeline_rate / raw_rate})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--cache", required=True, help="dataset cache folder (results/<run>/data)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--twin", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--no-amp", action="store_true", help="train in float32 (no bf16 autocast)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--out", default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = validated(yaml.safe_load(f))
    if args.num_workers is not None:
        config.setdefault("compute", {})["num_workers"] = args.num_workers
    for section in ("original", "twin"):
        if args.no_amp:
            config[section]["training"]["amp"] = False
        if args.no_channels_last:
            config[section]["training"]["channels_last"] = False
    table = benchmark_training(config, args.cache, args.steps, twin=args.twin, device=args.device)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
