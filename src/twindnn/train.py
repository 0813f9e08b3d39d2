"""Training of the original and the twin: checkpoint every epoch, resume, CSV metrics.

A run is reproducible on the CPU: each epoch re-seeds the shuffling, the data
workers and the augmentation from ``seed + epoch``, so a run killed after epoch
k and resumed ends with the same weights and metrics as an uninterrupted one.
It trains in channels-last memory format (on the CPU as well: 1.1-1.3x faster with oneDNN) and,
on a GPU, in bf16 mixed precision; under ``torchrun`` with several processes it trains
with DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.core.scaling.standalone import ParameterFromRuntimeStatsScaling
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .config import digest
from .data import CachedImages, check_enough_for_one_batch
from .fused_quant import fused_activation_quant
from .models import Normalize, load_checkpoint

# --------------------------------------------------------------------------- distributed


def distributed_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def pick_device(requested: str = "auto") -> torch.device:
    _, local_rank, _ = distributed_env()
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'.")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(requested)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, state: dict) -> None:
    """Write atomically: a kill during the write never leaves a half checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _short(fingerprint) -> str:
    """A fingerprint as the log shows it: its digest's first 12 characters and any suffix (+bf16)."""
    digest_part, plus, rest = str(fingerprint).partition("+")
    return digest_part[:12] + plus + rest


def resume(last_path: Path, fingerprint: str, model: nn.Module, optimizer, device, log,
           ema=None) -> tuple[list[dict], int]:
    """(history, first epoch to run) from ``last_path`` if it was made by this run (same fingerprint);
    ``ema`` (a ``timm.utils.ModelEmaV3``) gets its averaged weights back too."""
    if not last_path.exists():
        return [], 0
    state = load_checkpoint(last_path, map_location=device)
    found = state.get("fingerprint")
    if found != fingerprint:
        print(f"not resuming: {last_path} was made under another config, from other inputs or in another "
              f"precision (fingerprint {_short(found)}, this run {_short(fingerprint)}); training from scratch",
              file=log, flush=True)
        return [], 0
    try:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise RuntimeError(f"cannot resume from checkpoint {last_path}: {err}. Delete {last_path} to train "
                           "from scratch.") from err
    print(f"resuming from {last_path} after epoch {state['epoch'] + 1}", file=log, flush=True)
    return state["history"], state["epoch"] + 1


def _check_ema_possible(model: nn.Module) -> None:
    """timm's ModelEmaV3 pairs the two networks' state-dict entries by position; a Brevitas scale
    still collecting statistics leaves its value out of the state dict until it has them, so the
    average would pair the wrong tensors."""
    for name, module in model.named_modules():
        if isinstance(module, ParameterFromRuntimeStatsScaling) and module.counter <= module.collect_stats_steps:
            raise ValueError(f"training.ema_decay: {name} still collects activation statistics "
                             f"({int(module.counter)} of {module.collect_stats_steps} steps), which the weight "
                             "average cannot follow: set ema_decay: null, or calibrate the scales first "
                             "(act_scaling: learned twins have none)")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


# --------------------------------------------------------------------------- loop


def distillation_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float,
                      label_smoothing: float = 0.0):
    """(1 - alpha) * cross-entropy + alpha * T^2 * KL(teacher || student) at temperature T."""
    ce = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if teacher_logits is None or alpha == 0:
        return ce
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  reduction="batchmean", log_target=True)
    return (1 - alpha) * ce + alpha * t * t * kl


def make_optimizer(model: nn.Module, cfg: dict):
    params_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    params_no = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": params_decay, "weight_decay": cfg["weight_decay"]}, {"params": params_no, "weight_decay": 0.0}]
    name = cfg["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg["lr"])
    raise ValueError(f"training.optimizer {name!r} is not supported; use 'sgd' or 'adamw'.")


def cosine_lr(step: int, total: int, warmup: int, base_lr: float) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.inference_mode()
def evaluate_accuracy(model, normalize, loader, device) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` over ``loader``."""
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with _autocast(device):
            logits = model(normalize(images)).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
    return loss_sum / max(total, 1), correct / max(total, 1)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), as torch reports it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_cpu_amp(setting) -> bool:
    """training.cpu_amp as this machine runs it: ``auto`` is bf16 where the CPU has it natively."""
    if setting == "auto":
        return cpu_has_native_bf16()
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"training.cpu_amp is {setting!r}: use true, false or auto")


def _autocast(device: torch.device, enabled: bool = True, cpu=False):
    """bf16 autocast on a GPU (``enabled``, training.amp) or on the CPU (``cpu``, training.cpu_amp:
    true, false or auto, see :func:`resolve_cpu_amp`)."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=device.type == "cpu" and resolve_cpu_amp(cpu))


def training_precision(device: torch.device, cfg: dict) -> str:
    """The precision a training section's steps run in on ``device`` (bf16 autocast or float32)."""
    if device.type == "cuda":
        return "bf16" if cfg["amp"] else "float32"
    return "bf16" if device.type == "cpu" and resolve_cpu_amp(cfg["cpu_amp"]) else "float32"


def progress_line(meta: dict, row: dict, epochs: int, history: list[dict]) -> str:
    """One console line per epoch: which network, loss, accuracies, images/s and the time left
    (the epochs to go at the mean epoch time so far)."""
    spec = meta["quant_spec"]
    name = meta["kind"] + (f" {spec['name']}" if spec else "")
    left = (epochs - int(row["epoch"])) * sum(r["epoch_seconds"] for r in history) / max(len(history), 1)
    return (f"{name}: epoch {row['epoch']}/{epochs}, loss {row['train_loss']:.3f}, train acc "
            f"{row['train_accuracy']:.1%}, val acc {row['val_accuracy']:.1%}, {row['train_images_per_s']:.0f} "
            f"images/s, {left / 60:.1f} min left")


def fit(model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: dict, mean, std, work_dir,
        checkpoint_path, metrics_path, meta: dict, teacher: nn.Module | None = None,
        log=sys.stderr, stop_after_epoch: int | None = None, fingerprint: str | None = None,
        progress=None) -> list[dict]:
    """Train ``model``; resume from ``work_dir/last.pt`` when it was made by the same run.

    ``cfg``: the training section (epochs, batch_size, optimizer, lr, weight_decay, warmup_epochs,
    label_smoothing, num_workers, seed, device, amp, cpu_amp, distill_alpha, distill_temperature,
    max_steps_per_epoch). Writes the final checkpoint (``state_dict`` + ``meta``) to
    ``checkpoint_path`` and one CSV row per epoch to ``metrics_path``.

    ``fingerprint`` identifies what makes this run (its config and inputs, see
    :meth:`twindnn.config.Stage.fingerprint`; by default ``cfg`` and ``meta``). ``last.pt``
    records it, and a run resumes only from a ``last.pt`` with the same fingerprint: one made
    under another config, or from another original, is set aside and training starts fresh.
    ``stop_after_epoch`` ends the run early (as a kill would), for resume tests.
    """
    rank, _, world = distributed_env()
    device = pick_device(cfg["device"])
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    last_path = work_dir / "last.pt"

    normalize = Normalize(mean, std).to(device)
    model.to(device)
    # Channels-last on the CPU too: oneDNN's convolutions are faster in it (measured on 2 Xeon cores,
    # batch 128, CIFAR-10 half-width ResNet-10: 294 -> 377 images/s, its W1A1 twin 164 -> 179).
    channels_last = cfg["channels_last"]
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    optimizer = make_optimizer(model, cfg)
    ema = None
    if cfg["ema_decay"]:
        from timm.utils import ModelEmaV3  # timm's weight average, with its warm-up of the decay

        _check_ema_possible(model)
        ema = ModelEmaV3(model, decay=float(cfg["ema_decay"]), use_warmup=True)
    fingerprint = fingerprint or digest({"training": cfg, "meta": meta})
    precision = training_precision(device, cfg)
    if cfg["cpu_amp"] == "auto":  # the machine decides: a run resumes only in the precision it began in
        fingerprint = f"{fingerprint}+{precision}"
    print(f"training precision: {precision} (training.amp {cfg['amp']}, cpu_amp {cfg['cpu_amp']}, "
          f"device {device})", file=log, flush=True)
    history, start_epoch = resume(last_path, fingerprint, model, optimizer, device, log, ema=ema)
    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    check_enough_for_one_batch(len(train_set), int(cfg["batch_size"]) * world, "the training split")

    # Brevitas's activation quantizers as fused kernels for the whole run (twindnn.fused_quant).
    with contextlib.ExitStack() as stack:
        fused = stack.enter_context(fused_activation_quant(model, enabled=cfg["fused_quant"],
                                                           channels_last=channels_last))
        if ema is not None:
            stack.enter_context(fused_activation_quant(ema.module, enabled=cfg["fused_quant"],
                                                       channels_last=channels_last))
        if fused:
            print(f"{fused} activation quantizers fused (twindnn.fused_quant)", file=log, flush=True)
        history = _epochs(model, train_model, teacher, optimizer, ema, train_set, val_set, cfg, normalize, meta,
                          history, start_epoch, last_path, checkpoint_path, metrics_path, fingerprint, log,
                          progress, stop_after_epoch)
    if world > 1:
        torch.distributed.barrier()
    return history


def _epochs(model, train_model, teacher, optimizer, ema, train_set, val_set, cfg, normalize, meta, history,
            start_epoch, last_path, checkpoint_path, metrics_path, fingerprint, log, progress, stop_after_epoch):
    rank, _, world = distributed_env()
    device = next(model.parameters()).device
    seed = int(cfg["seed"])
    channels_last = cfg["channels_last"]
    batch_size = int(cfg["batch_size"])
    workers = int(cfg["num_workers"])
    epochs = int(cfg["epochs"])
    max_steps = cfg["max_steps_per_epoch"]
    steps_per_epoch = len(train_set) // (batch_size * world)  # the loader drops the last partial batch
    if max_steps:
        steps_per_epoch = min(steps_per_epoch, int(max_steps))
    total_steps = epochs * steps_per_epoch
    warmup = int(cfg["warmup_epochs"] * steps_per_epoch)
    val_loader = DataLoader(val_set, batch_size=batch_size * 2, shuffle=False, num_workers=workers,
                            pin_memory=device.type == "cuda")
    alpha = float(cfg["distill_alpha"]) if teacher is not None else 0.0
    precision = training_precision(device, cfg)  # resolved once (cpu_amp: auto asks the CPU), not per step
    for epoch in range(start_epoch, epochs):
        torch.manual_seed(seed * 1000 + epoch)  # augmentation RNG in the main process
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        if world > 1:
            sampler = torch.utils.data.distributed.DistributedSampler(train_set, seed=seed, drop_last=True)
            sampler.set_epoch(epoch)
            loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                pin_memory=True, drop_last=True, generator=generator, persistent_workers=False)
        else:
            loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=workers,
                                pin_memory=device.type == "cuda", drop_last=True, generator=generator)
        train_model.train()
        t0 = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        bar = tqdm(total=steps_per_epoch, desc=f"{meta.get('kind', 'model')} epoch {epoch + 1}/{epochs}",
                   file=log, disable=rank != 0, mininterval=5, unit="batch")
        for step, (images, labels) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            global_step = epoch * steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(global_step, total_steps, warmup, cfg["lr"])
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            x = normalize(images)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, cfg["amp"], precision == "bf16"):
                logits = train_model(x)
                teacher_logits = None
                if alpha > 0:
                    with torch.no_grad():
                        teacher_logits = teacher(x)
                loss = distillation_loss(logits.float(), None if teacher_logits is None else teacher_logits.float(),
                                         labels, alpha, float(cfg["distill_temperature"]),
                                         float(cfg["label_smoothing"]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(model, step=global_step + 1)
            seen += len(labels)
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - t0
        final = model if ema is None else ema.module  # the network the run saves
        val_loss, val_acc = evaluate_accuracy(final, normalize, val_loader, device)
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "train_images_per_s": seen * world / train_seconds if train_seconds > 0 else float("nan"),
            "epoch_seconds": train_seconds,
            "device": str(device),
            "precision": precision,
            "world_size": world,
        }
        history.append(row)
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              file=log, flush=True)
        if progress is not None and rank == 0:
            print(progress_line(meta, row, int(cfg["epochs"]), history), file=progress, flush=True)
        if rank == 0:
            state = {"state_dict": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch, "history": history, "meta": meta, "fingerprint": fingerprint}
            if ema is not None:
                state["ema"] = ema.module.state_dict()
            save_checkpoint(last_path, state)
            write_metrics(metrics_path, history)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            return history
    if rank == 0:
        write_metrics(metrics_path, history)
        saved = _unwrap(model) if ema is None else ema.module
        save_checkpoint(checkpoint_path, {"state_dict": saved.state_dict(), "meta": meta, "history": history,
                                          "fingerprint": fingerprint})
    return history


def write_metrics(path, history: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]) if history else ["epoch"])
        writer.writeheader()
        writer.writerows(history)


@torch.inference_mode()
def predict_logits(model: nn.Module, images: np.ndarray, mean, std, batch_size: int = 512,
                   device: str | torch.device = "cpu", out_size: int | None = None) -> np.ndarray:
    """float32 logits of ``model`` on uint8 NHWC ``images`` (centre-cropped to ``out_size``)."""
    device = torch.device(device)
    model.to(device).eval()
    normalize = Normalize(mean, std).to(device)
    dataset = CachedImages(images, np.zeros(len(images), dtype=np.int64), None, out_size)
    outputs = []
    for start in range(0, len(dataset), batch_size):
        batch = torch.stack([dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))])
        x = normalize(batch.to(device))
        with _autocast(device):
            outputs.append(model(x).float().cpu())
    return torch.cat(outputs).numpy().astype(np.float32) if outputs else np.zeros((0, 0), np.float32)
