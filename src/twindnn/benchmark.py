"""Training-speed benchmark: is data loading the bottleneck, and where does a step's time go?

For the original and every twin of the config it measures training images/s through the real
pipeline (cache -> DataLoader -> augmentation -> forward/backward/step) and the raw
forward/backward/step rate on synthetic tensors already on the device, and prints the ratio. A
ratio near 1 means the model is the limit; well below 1, the data pipeline starves the device
(raise compute.num_workers). ``--profile`` adds, per network, the share of a step's CPU time in
the largest operator kinds (torch.profiler): for a twin, how much goes to the convolutions and how
much to Brevitas's quantizers.

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
from .config import validated
from .device import describe_device
from .models import Normalize, QuantSpec, build_model, create_twin, input_meta
from .train import _autocast, make_optimizer, pick_device


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


def profile_step(model, optimizer, batch, device, normalize, channels_last, amp=True, steps: int = 3,
                 top: int = 6) -> str:
    """The ``top`` operator kinds by share of self CPU time over ``steps`` training steps."""
    from torch.profiler import ProfilerActivity, profile  # deferred: only --profile needs the profiler

    images, labels = batch
    x = normalize(images.to(device))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = labels.to(device)
    _step(model, optimizer, x, y, device, amp)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            _step(model, optimizer, x, y, device, amp)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events) or 1
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return ", ".join(f"{e.key[6:]} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top])


def benchmark_training(config: dict, cache_dir, steps: int = 20, warmup: int = 3, twin: str | None = None,
                       device: str = "auto", profile: bool = False) -> pd.DataFrame:
    meta = input_meta(data_lib.load_meta(cache_dir), config["dataset"]["input_size"])
    device = pick_device(device)
    images, labels = data_lib.load_split(cache_dir, "train")
    section = config["original"]
    model_cfg = {k: section[k] for k in ("model", "model_kwargs") if k in section}
    original = build_model("original", model_cfg, meta)
    networks = {"original": (original, config["original"]["training"])}
    for name in ([twin] if twin else list(config["twins"])):
        networks[f"twin_{name}"] = (create_twin(original, QuantSpec.from_config(name, config["twins"][name])),
                                    config["twin"]["training"])
    workers = int(config["compute"]["num_workers"])
    normalize = Normalize(meta["mean"], meta["std"]).to(device)
    rows = []
    for name, (model, train_cfg) in networks.items():
        amp = train_cfg["amp"]
        channels_last = train_cfg["channels_last"]
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, train_cfg)
        batch = int(train_cfg["batch_size"])
        dataset = data_lib.CachedImages(images, labels, train_cfg["augment"], meta["image_size"])
        loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        pipeline_rate = _rate(model, optimizer, iter(loader), device, normalize, channels_last, steps, warmup, amp)
        x = torch.randint(0, 256, (batch, meta["channels"], meta["image_size"], meta["image_size"]),
                          dtype=torch.uint8, device=device)
        y = torch.randint(0, meta["num_classes"], (batch,), device=device)
        synthetic = ((x, y) for _ in range(steps + warmup))
        raw_rate = _rate(model, optimizer, synthetic, device, normalize, channels_last, steps, warmup, amp)
        row = {"network": name, "batch_size": batch, "amp": amp and device.type == "cuda",
               "channels_last": channels_last, "num_workers": workers, "device": str(device),
               "threads": torch.get_num_threads(), "pipeline_images_per_s": pipeline_rate,
               "synthetic_images_per_s": raw_rate, "pipeline_to_synthetic_ratio": pipeline_rate / raw_rate}
        if profile:
            row["cpu_time_by_op"] = profile_step(model, optimizer, (x, y), device, normalize, channels_last, amp)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--cache", required=True, help="dataset cache folder (results/<run>/data)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--twin", default=None, help="one twin of the config (default: all of them)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also the operators a step's CPU time goes to")
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
    if args.threads:
        torch.set_num_threads(args.threads)
    table = benchmark_training(config, args.cache, args.steps, twin=args.twin, device=args.device,
                               profile=args.profile)
    print(f"device: {describe_device(table['device'].iloc[0])}")
    print(table.drop(columns=["cpu_time_by_op"], errors="ignore").to_string(
        index=False, float_format=lambda v: f"{v:,.3g}"))
    for row in table.to_dict("records"):
        if "cpu_time_by_op" in row:
            print(f"{row['network']}: {row['cpu_time_by_op']}")
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
