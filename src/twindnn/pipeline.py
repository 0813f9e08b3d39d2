"""Config-level steps that the rule scripts call: train the original, train a twin, save logits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from . import data as data_lib
from .models import TwinSpec, build_model, create_original, create_twin, load_checkpoint, load_trained
from .train import CachedImages, fit, predict_logits


def _training_cfg(config: dict, section: str) -> dict:
    cfg = dict(config[section]["training"])
    cfg.update({k: v for k, v in config.get("compute", {}).items() if k in ("device", "num_workers", "seed")})
    return cfg


def _datasets(cache_dir, data_meta: dict, augment: str | None):
    train_images, train_labels = data_lib.load_split(cache_dir, "train")
    val_images, val_labels = data_lib.load_split(cache_dir, "val")
    size = data_meta.get("input_size") or data_meta["image_size"]
    return (CachedImages(train_images, train_labels, augment, size), CachedImages(val_images, val_labels, None, size))


def _input_meta(config: dict, data_meta: dict) -> dict:
    """Dataset facts the model needs; ``input_size`` may crop the cached images (ImageNet)."""
    meta = {k: data_meta[k] for k in ("num_classes", "channels", "image_size", "mean", "std", "dataset")}
    meta["image_size"] = int(config["dataset"].get("input_size") or data_meta["image_size"])
    return meta


def _set_threads(config: dict) -> None:
    threads = config.get("compute", {}).get("threads")
    if threads:
        torch.set_num_threads(int(threads))


def train_original(config: dict, cache_dir, checkpoint, metrics, work_dir, log=sys.stderr, stop_after_epoch=None):
    _set_threads(config)
    data_meta = data_lib.load_meta(cache_dir)
    meta_in = _input_meta(config, data_meta)
    cfg = _training_cfg(config, "original")
    torch.manual_seed(int(cfg.get("seed", 0)))
    model_cfg = {k: config["original"][k] for k in ("model", "model_kwargs", "pretrained_file") if k in config["original"]}
    model = build_model("original", model_cfg, meta_in)
    train_set, val_set = _datasets(cache_dir, meta_in, cfg.get("augment"))
    meta = {"kind": "original", "model_cfg": model_cfg, "data_meta": meta_in, "twin_spec": None}
    return fit(model, train_set, val_set, cfg, meta_in["mean"], meta_in["std"], work_dir, checkpoint, metrics,
               meta, log=log, stop_after_epoch=stop_after_epoch)


def train_twin(config: dict, twin_name: str, cache_dir, original_checkpoint, checkpoint, metrics, work_dir,
               log=sys.stderr, stop_after_epoch=None):
    """QAT of one twin, initialized from (and optionally distilled from) the trained original."""
    _set_threads(config)
    if twin_name not in config["twins"]:
        raise KeyError(f"twin {twin_name!r} is not in config['twins'] ({sorted(config['twins'])}).")
    spec = TwinSpec.from_config(twin_name, config["twins"][twin_name])
    original = load_trained(original_checkpoint)
    meta_in = load_checkpoint(original_checkpoint)["meta"]["data_meta"]
    cfg = _training_cfg(config, "twin")
    torch.manual_seed(int(cfg.get("seed", 0)))
    twin = create_twin(original, spec, init_from_original=True)
    train_set, val_set = _datasets(cache_dir, meta_in, cfg.get("augment"))
    model_cfg = load_checkpoint(original_checkpoint)["meta"]["model_cfg"]
    model_cfg = {k: v for k, v in model_cfg.items() if k != "pretrained_file"}
    meta = {"kind": "twin", "model_cfg": model_cfg, "data_meta": meta_in, "twin_spec": spec.__dict__}
    teacher = original if float(cfg.get("distill_alpha", 0.0)) > 0 else None
    return fit(twin, train_set, val_set, cfg, meta_in["mean"], meta_in["std"], work_dir, checkpoint, metrics,
               meta, teacher=teacher, log=log, stop_after_epoch=stop_after_epoch)


def save_logits(config: dict, checkpoint, cache_dir, out_npz, device: str = "auto") -> dict:
    """Logits and labels of a trained model on the val and test splits, saved as npz."""
    _set_threads(config)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_trained(checkpoint)
    meta_in = load_checkpoint(checkpoint)["meta"]["data_meta"]
    arrays = {}
    for split in ("val", "test"):
        images, labels = data_lib.load_split(cache_dir, split)
        logits = predict_logits(model, images, meta_in["mean"], meta_in["std"], device=device,
                                out_size=meta_in["image_size"])
        arrays[f"{split}_logits"], arrays[f"{split}_labels"] = logits, labels.astype(np.int64)
        arrays[f"{split}_accuracy"] = np.float64((logits.argmax(1) == labels).mean())
    Path(out_npz).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_npz, **arrays)
    return {k: float(v) for k, v in arrays.items() if k.endswith("accuracy")}


__all__ = ["train_original", "train_twin", "save_logits", "create_original"]
