"""The dataset cache: written once by ``prepare_data``, read by every later step.

A cache is seven files: uint8 ``<split>_images.npy`` (N, H, W, C) and int64 ``<split>_labels.npy``
for each split (``train``, ``val``, ``test``), and ``meta.json``. Two ways name them:

- a cache folder, ``cache_paths(cache_dir)``: :func:`prepare_dataset`, :func:`load_split`,
  :func:`sample_split`, :func:`load_meta` (tests, notebooks, the training benchmark);
- a step's declared files, a mapping with the keys ``meta``, ``<split>_images``, ``<split>_labels``
  (the rules declare them with ``get_split_files`` in ``workflow/rules/common.smk``):
  :func:`prepare_dataset_files`, :func:`read_split`, :func:`sample_split_of`, :func:`read_meta`,
  :func:`training_datasets`. Steps read the cache only this way, so each file they read is declared.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .base import DATASET_INFO, SPLITS, DatasetError
from .decode import decode_images
from .readers import detect_format, get_reader
from .split import split_and_subset

# The names of a cache's files: those of the prepare_data rule's outputs and of the steps' inputs.
CACHE_FILES = (*(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")), "meta")


def cache_paths(cache_dir: str | Path) -> dict[str, Path]:
    """The files of a dataset cache, by name (``train_images``, ..., ``meta``)."""
    cache_dir = Path(cache_dir)
    paths = {key: cache_dir / f"{key}.npy" for key in CACHE_FILES if key != "meta"}
    paths["meta"] = cache_dir / "meta.json"
    return paths


def split_paths(cache_dir: str | Path, *splits: str) -> dict[str, Path]:
    """``meta`` and the files of ``splits`` of the cache at ``cache_dir``, named as a step's inputs
    (what ``get_split_files(*splits)`` declares in a rule)."""
    paths = cache_paths(cache_dir)
    return {"meta": paths["meta"], **{f"{s}_{k}": paths[f"{s}_{k}"] for s in splits for k in ("images", "labels")}}


# --------------------------------------------------------------------------- writing


def _sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()[:16]


def _partial_paths(paths: dict[str, Path]) -> dict[str, Path]:
    # Hidden names in the same folder, so that os.replace is an atomic rename on one file system.
    return {key: path.with_name(f".{path.name}.partial") for key, path in paths.items()}


def prepare_dataset(cfg: dict, cache_dir: str | Path, workers: int = 1) -> dict:
    """Decode the configured dataset into the cache at ``cache_dir``; return its metadata.

    ``cfg`` is the ``dataset`` section of the config (see :func:`prepare_dataset_files`)."""
    return prepare_dataset_files(cfg, cache_paths(cache_dir), workers)


def prepare_dataset_files(cfg: dict, files: Mapping, workers: int = 1) -> dict:
    """Decode the configured dataset into the cache files ``files`` (named as by :func:`cache_paths`:
    the prepare_data rule's outputs); return the metadata.

    ``cfg`` is the ``dataset`` section of the config, its defaults filled in by the schema. Every
    file is written under a temporary name and renamed into place only when all are complete,
    ``meta.json`` last: a killed run must not leave a final-named, zero-filled memory map that
    later steps would read as data.
    """
    final = {key: Path(files[key]) for key in CACHE_FILES}
    partial = _partial_paths(final)
    for folder in dict.fromkeys(path.parent for path in final.values()):
        folder.mkdir(parents=True, exist_ok=True)
    try:
        meta = _write_cache(cfg, partial, workers)
    except BaseException:
        for path in partial.values():
            path.unlink(missing_ok=True)
        raise
    # meta.json marks a complete cache: drop the old one first, so a crash among the renames leaves none.
    final["meta"].unlink(missing_ok=True)
    for key in [k for k in final if k != "meta"] + ["meta"]:
        os.replace(partial[key], final[key])
    return meta


def _write_cache(cfg: dict, paths: dict[str, Path], workers: int) -> dict:
    """Decode the dataset into the cache files ``paths`` (named as by ``cache_paths``); return the metadata."""
    name = cfg["name"]
    if name not in DATASET_INFO:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {sorted(DATASET_INFO)}.")
    info = DATASET_INFO[name]
    root = cfg["root"] or info["default_root"]
    root = Path(os.path.expanduser(str(root))) if root else Path(cfg["download_dir"]) / name
    fmt = cfg["format"]
    # image_size is required by the schema (no default); without it, the dataset's native size.
    size = int(cfg.get("image_size") or info["image_size"])
    channels = info["channels"]
    seed = int(cfg["seed"])

    if fmt == "auto":
        if root.exists():
            fmt = detect_format(root)
        elif cfg["download"]:
            fmt = "torchvision"
        else:
            raise DatasetError(
                f"dataset folder {root} does not exist. Set dataset.root to a local copy of {name}"
                + (" or dataset.download: true." if name != "imagenet" else " (ILSVRC-2012 train/ and val/ folders).")
            )

    meta = {"dataset": name, "format": fmt, "root": str(root), "seed": seed, "image_size": size, "channels": channels}
    raw = get_reader(fmt)(root, cfg, paths["meta"].parent)
    chosen = split_and_subset(len(raw.train[1]), len(raw.test[1]), cfg["val_fraction"], seed,
                              cfg["train_subset"], cfg["val_subset"], cfg["test_subset"])
    for split, index in chosen.items():
        images, labels = raw.test if split == "test" else raw.train
        _write_split(images, labels, index, paths[f"{split}_images"], paths[f"{split}_labels"], size, channels,
                     cfg["resize_short"], workers)

    meta.update(classes=list(raw.classes), num_classes=len(raw.classes), source=raw.source)
    for split in SPLITS:
        images = np.load(paths[f"{split}_images"], mmap_mode="r")
        labels = np.load(paths[f"{split}_labels"])
        meta[f"{split}_count"] = int(len(labels))
        meta[f"{split}_labels_sha256"] = _sha256_of(labels)
        if split == "train":
            sample = np.asarray(images[: min(len(images), 10000)], dtype=np.float64) / 255.0
            meta["mean"] = [float(v) for v in sample.mean(axis=(0, 1, 2))]
            meta["std"] = [float(v) for v in sample.std(axis=(0, 1, 2))]
    with open(paths["meta"], "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def _write_split(images, labels: np.ndarray, index: np.ndarray, images_path: Path, labels_path: Path, size: int,
                 channels: int, resize_short: int | None, workers: int) -> None:
    """The images ``index`` of ``images`` (an array, or a list of image files) and their labels, as one cached split."""
    if isinstance(images, np.ndarray):
        chosen = images[index]
        if chosen.shape[1:3] != (size, size):
            chosen = _resize_array(chosen, size)
        with open(images_path, "wb") as f:  # a file object: np.save would append .npy to the name
            np.save(f, chosen)
    else:  # image files: decoded straight into a memory map of the cache file
        files = [images[i] for i in index]
        out = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8,
                                        shape=(len(files), size, size, channels))
        decode_images(files, size, channels, resize_short, workers, out=out)
        out.flush()
        del out
    with open(labels_path, "wb") as f:  # a file object: np.save would append .npy to the name
        np.save(f, labels[index])


def _resize_array(images: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------- reading


def _declared(inputs: Mapping, key: str):
    try:
        return inputs[key]
    except KeyError:
        raise KeyError(f"the step reads the dataset cache file {key!r}, but its rule declares no such input "
                       f"(it has {sorted(inputs)}): add the split to the rule's **get_split_files(...)") from None


def _load_arrays(images_path: Path, labels_path: Path, mmap: bool, where) -> tuple[np.ndarray, np.ndarray]:
    for path in (images_path, labels_path):
        if not path.exists():
            raise DatasetError(f"dataset cache file {path} is missing. Re-run the prepare_data rule.")
    try:
        images = np.load(images_path, mmap_mode="r" if mmap else None)
        labels = np.load(labels_path)
    except (ValueError, OSError) as err:
        raise DatasetError(f"dataset cache in {where} is corrupt ({err}). Delete it and re-run prepare_data.") from err
    return images, labels


def _sample(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(int(n), len(labels))
    index = np.sort(np.random.default_rng(seed).choice(len(labels), size=n, replace=False))
    return np.asarray(images[index]), np.asarray(labels[index])


def read_split(inputs: Mapping, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 NHWC, memory-mapped) and labels of one split, from a step's declared
    ``<split>_images`` / ``<split>_labels`` inputs."""
    images = Path(_declared(inputs, f"{split}_images"))
    labels = Path(_declared(inputs, f"{split}_labels"))
    return _load_arrays(images, labels, mmap, images.parent)


def load_split(cache_dir: str | Path, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 NHWC, memory-mapped) and labels of one split of the cache at ``cache_dir``."""
    paths = cache_paths(cache_dir)
    return _load_arrays(paths[f"{split}_images"], paths[f"{split}_labels"], mmap, cache_dir)


def sample_split_of(inputs: Mapping, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images and labels drawn from a split of a step's declared inputs; see :func:`sample_split`."""
    return _sample(*read_split(inputs, split), n, seed)


def sample_split(cache_dir: str | Path, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images and labels drawn from a cached split (seeded, without replacement).

    Splits are stored class by class, so their first ``n`` images would all be of one class:
    calibration and export checks use this sample instead."""
    return _sample(*load_split(cache_dir, split), n, seed)


def read_meta(path: str | Path) -> dict:
    """The metadata ``prepare_dataset`` wrote, from its ``meta.json`` at ``path`` (a step's ``meta`` input)."""
    path = Path(path)
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError as err:
        raise DatasetError(f"dataset cache file {path} is missing. Re-run the prepare_data rule.") from err
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        meta = f"{type(err).__name__}: {err}"
    if not isinstance(meta, dict):
        raise DatasetError(f"dataset cache file {path} is truncated or invalid ({meta!s:.80}). Delete the cache "
                           f"folder {path.parent} and re-run prepare_data.")
    return meta


def load_meta(cache_dir: str | Path) -> dict:
    """The metadata ``prepare_dataset`` wrote for the cache at ``cache_dir``."""
    return read_meta(cache_paths(cache_dir)["meta"])


def check_enough_for_one_batch(n_images: int, batch_size: int, what: str) -> None:
    """Raise when ``what`` (a split) has fewer images than one batch: with drop_last it would train on nothing."""
    if n_images < batch_size:
        raise DatasetError(f"{what} has {n_images} images, fewer than one batch of {batch_size}. Lower "
                           "training.batch_size or use more data (dataset.train_subset).")


# --------------------------------------------------------------------------- training


class CachedImages(Dataset):
    """uint8 NHWC images from the cache (memory-mapped), returned as uint8 CHW tensors.

    ``augment``: ``None``; ``"crop_flip"`` (pad-4 random crop + horizontal flip, CIFAR style);
    ``"crop"`` (random crop only, for digits/clothes where flips are fine too but unneeded);
    ``"random_resized_crop"`` (ImageNet style, output ``out_size``).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: str | None = None,
                 out_size: int | None = None):
        self.images, self.labels, self.augment = images, labels, augment
        self.out_size = out_size or images.shape[1]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        img = torch.from_numpy(np.array(self.images[index])).permute(2, 0, 1)  # C,H,W uint8
        if self.augment in ("crop_flip", "crop"):
            pad = 4
            img = F.pad(img, (pad, pad, pad, pad))
            top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
            img = img[:, top : top + self.out_size, left : left + self.out_size]
            if self.augment == "crop_flip" and torch.rand(()) < 0.5:
                img = img.flip(-1)
        elif self.augment == "random_resized_crop":
            # deferred: torchvision is heavy, and only ImageNet-size inputs need it
            from torchvision.transforms.v2 import RandomResizedCrop
            from torchvision.transforms.v2 import functional as TF

            i, j, h, w = RandomResizedCrop.get_params(img, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
            img = TF.resized_crop(img, i, j, h, w, [self.out_size, self.out_size], antialias=True)
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
        elif self.out_size != img.shape[-1]:
            from torchvision.transforms.v2 import functional as TF  # deferred: as above

            img = TF.center_crop(img, [self.out_size, self.out_size])
        return img, int(self.labels[index])


def training_datasets(inputs: Mapping, data_meta: dict, augment: str | None) -> tuple[CachedImages, CachedImages]:
    """(train, val) datasets of a step's declared split files, at the network's input size
    (``data_meta["image_size"]``); ``augment`` applies to train only."""
    size = data_meta["image_size"]
    train = CachedImages(*read_split(inputs, "train"), augment, size)
    return train, CachedImages(*read_split(inputs, "val"), None, size)
