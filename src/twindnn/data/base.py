"""What every module of :mod:`twindnn.data` shares: the dataset facts, the error, the raw-dataset record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}

# Per-dataset facts: channels, native size, and where a local copy usually lives.
DATASET_INFO = {
    "fashion_mnist": {
        "channels": 1,
        "image_size": 28,
        "default_root": "/usr/share/datasets/fashion-mnist",
        "classes": [
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ],
    },
    "cifar10": {
        "channels": 3,
        "image_size": 32,
        "default_root": None,
        "classes": [
            "airplane", "automobile", "bird", "cat", "deer",
            "dog", "frog", "horse", "ship", "truck",
        ],
    },
    "imagenet": {"channels": 3, "image_size": 224, "default_root": None, "classes": None},
}


class DatasetError(RuntimeError):
    """A dataset that is missing, malformed or unreadable; the message names the fix."""


@dataclass
class RawDataset:
    """A dataset as read, before splitting. ``train``/``test`` are (images, labels).

    ``images`` is a uint8 (N, H, W, C) array, or, for image folders, the list of the image files,
    which the cache writer decodes straight into the cache."""

    train: tuple[np.ndarray | Sequence[Path], np.ndarray]
    test: tuple[np.ndarray | Sequence[Path], np.ndarray]
    classes: list[str]
    source: str
