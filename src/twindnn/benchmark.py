"""Training-speed benchmark: is data loading the bottleneck, and where does a step's time go?

For the original and every twin of the config (each twin on Brevitas's own quantizers and fused,
:mod:`twindnn.fused_quant`) it measures training images/s through the real pipeline (cache ->
DataLoader -> augmentation -> forward/backward/step) and the raw forward/backward/step rate on
synthetic tensors already on the device, in interleaved rounds, and prints the ratio. A
ratio near 1 means the model is the limit; well below 1, the data pipeline starves the device
(raise compute.num_workers). ``--profile`` adds, per network, the milliseconds of a step in the
convolutions and batch norms (what the original runs too), the fused quantizer kernels, the other
operators and Python and dispatch, and the largest operator kinds (torch.profiler).

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
from .fused_quant import fused_activation_quant
from .models import Normalize, QuantSpec, build_model, create_twin, input_meta
from .train import _autocast, make_optimizer, pick_device, resolve_cpu_amp, training_precision


def _step(model, optimizer, x, y, device, amp=True, cpu_amp=False):
    with _autocast(device, amp, cpu_amp):
        loss = F.cross_entropy(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(model, optimizer, batches, device, normalize, channels_last, steps, warmup, amp=True, cpu_amp=False):
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
        _step(model, optimizer, x, labels.to(device, non_blocking=True), device, amp, cpu_amp)
        seen += len(labels)
    _sync(device)
    return seen / (time.perf_counter() - start)


def _kind(key: str) -> str:
    """What a profiler event is: the convolutions and batch norms the original runs too, the
    fused quantizer kernels, or any other operator."""
    if "convolution" in key or "batch_norm" in key:
        return "convolution and batch norm"
    if key.startswith("## Call CompiledFxGraph"):
        return "fused quantizer kernels"
    return "other operators"


def profile_step(model, optimizer, batch, device, normalize, channels_last, amp=True, steps: int = 3,
                 top: int = 6, cpu_amp=False) -> dict:
    """Where ``steps`` training steps spend their time: ``by_op``, the ``top`` operator kinds by
    share of self CPU time; ``split``, milliseconds per step in the convolutions and batch norms,
    the fused quantizer kernels, the other operators, and Python and dispatch (wall time outside
    every operator: Brevitas's per-call work on scales and QuantTensors)."""
    from torch.profiler import ProfilerActivity, profile  # deferred: only --profile needs the profiler

    images, labels = batch
    x = normalize(images.to(device))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = labels.to(device)
    _step(model, optimizer, x, y, device, amp, cpu_amp)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            _step(model, optimizer, x, y, device, amp, cpu_amp)
        _sync(device)
        wall_ms = (time.perf_counter() - start) * 1e3 / steps
    events = [e for e in prof.key_averages() if e.key.startswith("aten::") or e.key.startswith("## Call")]
    total = sum(e.self_cpu_time_total for e in events) or 1
    split = {}
    for e in events:
        kind = _kind(e.key)
        split[kind] = split.get(kind, 0.0) + e.self_cpu_time_total / 1e3 / steps
    split["Python and dispatch"] = max(0.0, wall_ms - sum(split.values()))
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    by_op = ", ".join(f"{e.key.removeprefix('aten::')[:24]} {100 * e.self_cpu_time_total / total:.0f}%"
                      for e in events[:top])
    return {"step_ms": wall_ms, "by_op": by_op, "split": split}


def benchmark_training(config: dict, cache_dir, steps: int = 20, warmup: int = 3, twin: str | None = None,
                       device: str = "auto", profile: bool = False, rounds: int = 1) -> pd.DataFrame:
    """Training images/s of the original and of each twin, each twin both on Brevitas's own
    quantizers and fused (:mod:`twindnn.fused_quant`), through the real pipeline and on synthetic
    tensors; ``rounds`` interleaved rounds (every network once per round), medians with the
    range. ``synthetic_vs_original``: a network's synthetic rate over the original's."""
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
    runs = []  # (network, fused): every twin twice, the original once (it has no quantizers)
    optimizers, loaders, batches = {}, {}, {}  # per network, made once for all rounds
    for name, (model, train_cfg) in networks.items():
        model.to(device)
        if train_cfg["channels_last"]:
            model.to(memory_format=torch.channels_last)
        runs += [(name, False)] + ([(name, True)] if name != "original" else [])
        optimizers[name] = make_optimizer(model, train_cfg)
        batch = int(train_cfg["batch_size"])
        dataset = data_lib.CachedImages(images, labels, train_cfg["augment"], meta["image_size"])
        loaders[name] = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                   pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        batches[name] = (torch.randint(0, 256, (batch, meta["channels"], meta["image_size"], meta["image_size"]),
                                       dtype=torch.uint8, device=device),
                         torch.randint(0, meta["num_classes"], (batch,), device=device))
    rates: dict[tuple, list] = {run: [] for run in runs}
    profiles = {}
    for _ in range(max(1, int(rounds))):
        for name, fused in runs:
            model, train_cfg = networks[name]
            # cpu_amp resolved once per network (auto asks the CPU), not in every step
            amp, cpu_amp = train_cfg["amp"], resolve_cpu_amp(train_cfg["cpu_amp"])
            channels_last = train_cfg["channels_last"]
            with fused_activation_quant(model, enabled=fused, channels_last=channels_last):
                pipeline_rate = _rate(model, optimizers[name], iter(loaders[name]), device, normalize,
                                      channels_last, steps, warmup, amp, cpu_amp)
                synthetic = (batches[name] for _ in range(steps + warmup))
                raw_rate = _rate(model, optimizers[name], synthetic, device, normalize, channels_last, steps,
                                 warmup, amp, cpu_amp)
                if profile and (name, fused) not in profiles:
                    profiles[(name, fused)] = profile_step(model, optimizers[name], batches[name], device,
                                                           normalize, channels_last, amp, cpu_amp=cpu_amp)
            rates[(name, fused)].append((pipeline_rate, raw_rate))
    rows = []
    for name, fused in runs:
        train_cfg = networks[name][1]
        pipeline = pd.Series([r[0] for r in rates[(name, fused)]])
        raw = pd.Series([r[1] for r in rates[(name, fused)]])
        row = {"network": name, "fused_quant": fused, "batch_size": int(train_cfg["batch_size"]),
               "amp": training_precision(device, train_cfg) == "bf16", "channels_last": train_cfg["channels_last"],
               "num_workers": workers, "device": str(device), "threads": torch.get_num_threads(),
               "rounds": len(raw), "pipeline_images_per_s": pipeline.median(),
               "synthetic_images_per_s": raw.median(), "synthetic_min": raw.min(), "synthetic_max": raw.max()}
        row["pipeline_to_synthetic_ratio"] = row["pipeline_images_per_s"] / row["synthetic_images_per_s"]
        if (name, fused) in profiles:
            found = profiles[(name, fused)]
            row["step_ms"] = found["step_ms"]
            row["cpu_time_by_op"] = found["by_op"]
            for kind, ms in found["split"].items():
                row[f"ms_{kind.replace(' ', '_')}"] = ms
        rows.append(row)
    table = pd.DataFrame(rows)
    base = table.loc[table["network"] == "original", "synthetic_images_per_s"].iloc[0]
    table["synthetic_vs_original"] = table["synthetic_images_per_s"] / base
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--cache", required=True, help="dataset cache folder (results/<run>/data)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians and ranges over them)")
    parser.add_argument("--twin", default=None, help="one twin of the config (default: all of them)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also the operators a step's CPU time goes to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--no-amp", action="store_true", help="train in float32 (no bf16 autocast)")
    parser.add_argument("--cpu-amp", choices=["true", "false", "auto"], default=None,
                        help="training.cpu_amp for the original and the twins (default: the config's)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--out", default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = validated(yaml.safe_load(f))
    if args.num_workers is not None:
        config.setdefault("compute", {})["num_workers"] = args.num_workers
    for section in ("original", "twin"):
        if args.cpu_amp is not None:
            config[section]["training"]["cpu_amp"] = {"true": True, "false": False}.get(args.cpu_amp, args.cpu_amp)
        if args.no_amp:
            config[section]["training"]["amp"] = config[section]["training"]["cpu_amp"] = False
        if args.no_channels_last:
            config[section]["training"]["channels_last"] = False
    if args.threads:
        torch.set_num_threads(args.threads)
    table = benchmark_training(config, args.cache, args.steps, twin=args.twin, device=args.device,
                               profile=args.profile, rounds=args.rounds)
    print(f"device: {describe_device(table['device'].iloc[0])}")
    shown = ["network", "fused_quant", "batch_size", "threads", "rounds", "pipeline_images_per_s",
             "synthetic_images_per_s", "synthetic_min", "synthetic_max", "synthetic_vs_original"]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    for row in table.to_dict("records"):
        if "cpu_time_by_op" in row:
            split = ", ".join(f"{k[3:].replace('_', ' ')} {v:.0f}" for k, v in row.items()
                              if k.startswith("ms_"))
            print(f"{row['network']}{' (fused)' if row['fused_quant'] else ''}: {row['step_ms']:.0f} ms per "
                  f"step: {split} ms; largest operators: {row['cpu_time_by_op']}")
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
