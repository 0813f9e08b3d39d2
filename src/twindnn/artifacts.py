"""What the steps hand to each other besides checkpoints: a network's logits on the val and test
splits (one ``.npz`` per network), and their accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .data import read_split
from .models import load_trained
from .train import pick_device, predict_logits


def load_npz(path) -> dict:
    """Every array of an ``.npz`` file, read into memory."""
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def save_logits(checkpoint, inputs: Mapping, out_npz, device: str = "auto") -> dict:
    """Logits, labels and accuracy of a trained network on the val and test splits, as npz.

    ``inputs``: a step's inputs with the split files ``val_images``, ``val_labels``, ``test_images``,
    ``test_labels``."""
    model, meta = load_trained(checkpoint)
    meta_in = meta["data_meta"]
    device = pick_device(device)
    arrays = {}
    for split in ("val", "test"):
        images, labels = read_split(inputs, split)
        logits = predict_logits(model, images, meta_in["mean"], meta_in["std"], device=device,
                                out_size=meta_in["image_size"])
        arrays[f"{split}_logits"], arrays[f"{split}_labels"] = logits, labels.astype(np.int64)
        arrays[f"{split}_accuracy"] = np.float64(accuracy(logits, labels))
    Path(out_npz).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_npz, **arrays)
    return {k: float(v) for k, v in arrays.items() if k.endswith("accuracy")}
