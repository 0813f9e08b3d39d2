"""One dataset interface for Fashion-MNIST, CIFAR-10 and ImageNet.

Every source is decoded once into a cache of uint8 ``.npy`` arrays (N, H, W, C)
plus int64 labels, one file pair per split (``train``, ``val``, ``test``).
Training reads the cache through memory maps, so epochs never re-decode images.
The ``val`` split is carved from the training set with a fixed seed; it is the
split on which gate thresholds are chosen. ``test`` is only ever reported.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import struct
from concurrent.futures import ProcessPoolExecutor
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
    """Decoded images before splitting. ``train``/``test`` are (images, labels)."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: list[str]
    source: str


# --------------------------------------------------------------------------- readers


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), gzipped or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"cannot read IDX file {path}: {err}. Re-download or reinstall it.") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path} is not an IDX file (bad magic number). Re-download it.")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DatasetError(f"{path}: only unsigned-byte IDX files are supported (type {dtype_code:#x}).")
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path} is truncated: its header declares {ndim} dimensions ({4 + 4 * ndim} bytes) "
                           f"but the file has only {len(data)} bytes. Re-download it.")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: expected {int(np.prod(shape))} bytes, found {body.size}.")
    return body.reshape(shape)


def _find_file(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for candidate in (root / name, root / "raw" / name, root / "FashionMNIST" / "raw" / name):
            if candidate.exists():
                return candidate
    return None


def _check_shape(images: np.ndarray, path: Path, name: str | None) -> None:
    """IDX and pickle files hold images of one fixed size: they must be the ones dataset.name promises,
    else a wrong dataset.root would be silently resized into a cache whose meta says otherwise."""
    if name is None:
        return
    info = DATASET_INFO[name]
    expected = (info["image_size"], info["image_size"], info["channels"])
    found = tuple(images.shape[1:])
    if found != expected:
        fits = [n for n, i in DATASET_INFO.items() if (i["image_size"], i["image_size"], i["channels"]) == found]
        raise DatasetError(
            f"{path} holds images of shape {found} (H, W, C) but dataset.name {name!r} expects {expected}. "
            f"Set dataset.root to a copy of {name}" + (f", or dataset.name to {fits[0]!r}." if fits else ".")
        )


def _check_labels(labels: np.ndarray, path: Path, num_classes: int) -> None:
    """Out-of-range labels would crash the loss (or silently index the wrong class) deep inside training."""
    if labels.ndim != 1:
        raise DatasetError(f"{path} is not a label file: its array has shape {labels.shape}, expected (N,). "
                           "Check that dataset.root holds the right files.")
    if num_classes and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path} has labels in [{labels.min()}, {labels.max()}] but the dataset has "
                           f"{num_classes} classes (0..{num_classes - 1}). The file is corrupt or of another "
                           "dataset; re-download it or fix dataset.name / dataset.root.")


def read_idx_dataset(root: Path, classes: list[str], name: str | None = None) -> RawDataset:
    names = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    arrays = {}
    for key, stem in names.items():
        path = _find_file(root, stem)
        if path is None:
            raise DatasetError(
                f"{root} has no {stem}(.gz). Point dataset.root at a folder with the four IDX files, "
                "install Debian's dataset-fashion-mnist, or set dataset.download: true."
            )
        arrays[key] = read_idx(path)
        if key.endswith("labels"):
            _check_labels(arrays[key], path, len(classes))
        else:
            _check_shape(arrays[key][..., None], path, name)
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DatasetError(f"{root}: {split} images and labels differ in count.")
    return RawDataset(
        train=(arrays["train_images"][..., None], arrays["train_labels"].astype(np.int64)),
        test=(arrays["test_images"][..., None], arrays["test_labels"].astype(np.int64)),
        classes=classes,
        source=f"idx files in {root}",
    )


def read_cifar_pickles(root: Path, name: str | None = None) -> RawDataset:
    """Read the original CIFAR-10 python release (data_batch_1..5, test_batch).

    ``name``: the configured dataset.name, whose image shape the batches must have."""
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    classes = DATASET_INFO["cifar10"]["classes"]
    meta = base / "batches.meta"
    if meta.exists():
        with open(meta, "rb") as f:
            classes = list(pickle.load(f, encoding="latin1")["label_names"])

    def load(file_name: str):
        path = base / file_name
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
        except FileNotFoundError as err:
            raise DatasetError(f"CIFAR-10 batch {path} is missing. Re-extract cifar-10-python.tar.gz.") from err
        except (pickle.UnpicklingError, EOFError, OSError) as err:
            raise DatasetError(f"CIFAR-10 batch {path} is unreadable ({err}). Re-download it.") from err
        missing = [k for k in ("data", "labels") if not isinstance(batch, dict) or k not in batch]
        if missing:
            found = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise DatasetError(f"CIFAR-10 batch {path} has no {missing} entry (found {found}); it is not a "
                               "CIFAR-10 python batch. Re-extract cifar-10-python.tar.gz.")
        rows = np.asarray(batch["data"], dtype=np.uint8)
        if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
            raise DatasetError(f"CIFAR-10 batch {path} has data of shape {rows.shape}, expected (N, 3072) "
                               "(32x32 RGB rows). Re-extract cifar-10-python.tar.gz.")
        images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch["labels"], dtype=np.int64)
        _check_labels(labels, path, len(classes))
        _check_shape(images, path, name)
        if len(images) != len(labels):
            raise DatasetError(f"CIFAR-10 batch {path} has {len(images)} images but {len(labels)} labels. Re-download it.")
        return images, labels

    parts = [load(f"data_batch_{i}") for i in range(1, 6)]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return RawDataset(train=train, test=load("test_batch"), classes=classes, source=f"CIFAR-10 pickle batches in {base}")


def _class_dirs(split_dir: Path) -> list[str]:
    # Hidden folders (.ipynb_checkpoints, .git and the like) are not classes.
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def list_image_folder(split_dir: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """List ``split_dir/<class>/<image>`` files; labels follow sorted class names."""
    if not split_dir.is_dir():
        raise DatasetError(f"image folder {split_dir} does not exist. Expected {split_dir}/<class>/<image files>.")
    found = _class_dirs(split_dir)
    if classes is None:
        classes = found
    if not classes:
        raise DatasetError(f"{split_dir} has no class sub-folders. Expected {split_dir}/<class>/<image files>.")
    missing = sorted(set(classes) - set(found))
    if missing:
        raise DatasetError(f"{split_dir} lacks class folders {missing[:5]} that the training split has. Add "
                           f"{split_dir / missing[0]}/ with held-out images of that class, or remove the class "
                           "from the training split.")
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            # An empty class still takes a label and an output that can never be learned or scored.
            raise DatasetError(f"class folder {split_dir / name} has no image files "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))}). Add images or remove the folder.")
        paths.extend(files)
        labels.extend([index] * len(files))
    return paths, np.asarray(labels, dtype=np.int64), classes


def decode_image(path: Path, size: int, channels: int, resize_short: int | None = None) -> np.ndarray:
    """Decode one image to uint8 (size, size, channels).

    ``resize_short``: resize the short side to this first, then centre-crop ``size``
    (ImageNet style); by default the image is resized straight to size x size.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if resize_short:
                w, h = img.size
                scale = resize_short / min(w, h)
                img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
                w, h = img.size
                left, top = (w - size) // 2, (h - size) // 2
                img = img.crop((left, top, left + size, top + size))
            elif img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"cannot decode image {path}: {err}. Delete or replace the file.") from err
    return array[..., None] if array.ndim == 2 else array


def _decode_chunk(args):
    paths, size, channels, resize_short = args
    return np.stack([decode_image(p, size, channels, resize_short) for p in paths])


def decode_images(paths, size: int, channels: int, resize_short: int | None = None, workers: int = 1,
                  out: np.ndarray | None = None, progress: bool = True) -> np.ndarray:
    """Decode many images in parallel worker processes into one uint8 array (or ``out``)."""
    from tqdm import tqdm

    if out is None:
        out = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    chunk = 256
    jobs = [(paths[i : i + chunk], size, channels, resize_short) for i in range(0, len(paths), chunk)]
    bar = tqdm(total=len(paths), desc="decode", unit="img", disable=not progress, mininterval=2)
    if workers <= 1:
        results = map(_decode_chunk, jobs)
        for i, block in enumerate(results):
            out[i * chunk : i * chunk + len(block)] = block
            bar.update(len(block))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, block in enumerate(pool.map(_decode_chunk, jobs)):
                out[i * chunk : i * chunk + len(block)] = block
                bar.update(len(block))
    bar.close()
    return out


def detect_format(root: Path) -> str:
    """Guess the on-disk layout of a local dataset copy."""
    if _find_file(root, "train-images-idx3-ubyte"):
        return "idx"
    if (root / "data_batch_1").exists() or (root / "cifar-10-batches-py" / "data_batch_1").exists():
        return "pickle"
    if (root / "train").is_dir():
        return "image_folder"
    raise DatasetError(
        f"{root}: no known dataset layout (IDX files, CIFAR-10 pickle batches, or train/<class>/ folders). "
        "Set dataset.root to the dataset folder, or dataset.download: true."
    )


def _torchvision_download(name: str, root: Path) -> RawDataset:
    import torchvision

    cls = {"fashion_mnist": torchvision.datasets.FashionMNIST, "cifar10": torchvision.datasets.CIFAR10}.get(name)
    if cls is None:
        raise DatasetError(f"{name} cannot be downloaded automatically; set dataset.root to a local copy.")
    try:
        train, test = cls(str(root), train=True, download=True), cls(str(root), train=False, download=True)
    except Exception as err:  # network errors surface as many types
        raise DatasetError(
            f"downloading {name} to {root} failed ({err}). Without internet, set dataset.root to a local copy."
        ) from err

    def arrays(ds):
        images = np.asarray(ds.data, dtype=np.uint8)
        return (images[..., None] if images.ndim == 3 else images), np.asarray(ds.targets, dtype=np.int64)

    return RawDataset(arrays(train), arrays(test), list(train.classes), f"torchvision {cls.__name__} in {root}")


# --------------------------------------------------------------------------- splitting


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/val split of ``range(n)``; sorted index arrays."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def subset(indices: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A seeded random subset of ``indices`` of at most ``limit`` items (all when None)."""
    if limit is None or limit >= len(indices):
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, size=limit, replace=False))


# --------------------------------------------------------------------------- cache


def cache_paths(cache_dir: str | Path) -> dict[str, Path]:
    """The files of a dataset cache, by name (``train_images``, ..., ``meta``)."""
    cache_dir = Path(cache_dir)
    paths = {f"{s}_{k}": cache_dir / f"{s}_{k}.npy" for s in SPLITS for k in ("images", "labels")}
    paths["meta"] = cache_dir / "meta.json"
    return paths


def _sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()[:16]


def _partial_paths(paths: dict[str, Path]) -> dict[str, Path]:
    # Hidden names in the same folder, so that os.replace is an atomic rename on one file system.
    return {key: path.with_name(f".{path.name}.partial") for key, path in paths.items()}


def prepare_dataset(cfg: dict, cache_dir: str | Path, workers: int = 1) -> dict:
    """Decode the configured dataset into the cache at ``cache_dir``; return its metadata.

    ``cfg`` is the ``dataset`` section of the config. Every file is written under a temporary
    name and renamed into place only when all are complete, ``meta.json`` last: a killed run
    must not leave a final-named, zero-filled memory map that later steps would read as data.
    """
    final = cache_paths(cache_dir)
    partial = _partial_paths(final)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
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
    root = cfg.get("root") or info["default_root"]
    root = Path(os.path.expanduser(str(root))) if root else Path(cfg.get("download_dir", "data")) / name
    fmt = cfg.get("format", "auto")
    size = int(cfg.get("image_size") or info["image_size"])
    channels = info["channels"]
    seed = int(cfg.get("seed", 0))

    if fmt == "auto":
        if root.exists():
            fmt = detect_format(root)
        elif cfg.get("download", False):
            fmt = "torchvision"
        else:
            raise DatasetError(
                f"dataset folder {root} does not exist. Set dataset.root to a local copy of {name}"
                + (" or dataset.download: true." if name != "imagenet" else " (ILSVRC-2012 train/ and val/ folders).")
            )

    meta = {"dataset": name, "format": fmt, "root": str(root), "seed": seed, "image_size": size, "channels": channels}
    if fmt in ("idx", "pickle", "torchvision"):
        if fmt == "idx":
            raw = read_idx_dataset(root, info["classes"] or [], name)
        elif fmt == "pickle":
            raw = read_cifar_pickles(root, name)
        else:
            raw = _torchvision_download(name, root)
        train_idx, val_idx = split_indices(len(raw.train[1]), cfg["val_fraction"], seed)
        chosen = {
            "train": (raw.train, subset(train_idx, cfg.get("train_subset"), seed + 1)),
            "val": (raw.train, subset(val_idx, cfg.get("val_subset"), seed + 2)),
            "test": (raw.test, subset(np.arange(len(raw.test[1])), cfg.get("test_subset"), seed + 3)),
        }
        for split, ((images, labels), idx) in chosen.items():
            imgs = images[idx]
            if imgs.shape[1:3] != (size, size):
                imgs = _resize_array(imgs, size)
            for key, array in ((f"{split}_images", imgs), (f"{split}_labels", labels[idx])):
                with open(paths[key], "wb") as f:  # a file object: np.save would append .npy to the name
                    np.save(f, array)
        classes, source = raw.classes, raw.source
    elif fmt == "image_folder":
        classes, source = _prepare_image_folder(cfg, root, size, channels, seed, paths, workers)
    else:
        raise DatasetError(f"unknown dataset.format {fmt!r}; use auto, idx, pickle, image_folder or torchvision.")

    meta.update(classes=list(classes), num_classes=len(classes), source=source)
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


def _resize_array(images: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _prepare_image_folder(cfg, root: Path, size, channels, seed, paths, workers):
    """``root/train/<class>/*`` and ``root/test|val/<class>/*`` into the cache."""
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if test_dir is not None and not any(p.is_dir() for p in test_dir.iterdir()):
        # A flat ILSVRC-2012 val/ folder: sort it into class folders from the ground-truth list.
        if not cfg.get("imagenet_val_ground_truth"):
            raise DatasetError(f"{test_dir} has no class folders. Set dataset.imagenet_val_ground_truth to the "
                               "ILSVRC-2012 validation ground-truth list to sort it.")
        truth = read_imagenet_ground_truth(cfg["imagenet_val_ground_truth"], cfg.get("imagenet_synsets"))
        test_dir = organize_imagenet_val(test_dir, truth, Path(paths["meta"]).parent / "val_by_class")
    if test_dir is None:
        raise DatasetError(f"{root} has train/ but neither test/ nor val/. Add the held-out split as {root}/val/<class>/.")
    train_paths, train_labels, classes = list_image_folder(root / "train")
    extra = sorted(set(_class_dirs(test_dir)) - set(classes))
    if extra:
        # Labels follow the training classes: a held-out-only class has no label and could never be right.
        raise DatasetError(f"{test_dir} has class folders {extra[:5]} that {root / 'train'} lacks. Add "
                           f"{root / 'train' / extra[0]}/ with training images, or remove {test_dir / extra[0]}/.")
    if cfg.get("class_subset"):
        keep = classes[: int(cfg["class_subset"])]
        mask = np.isin(train_labels, np.arange(len(keep)))
        train_paths = [p for p, m in zip(train_paths, mask) if m]
        train_labels, classes = train_labels[mask], keep
    test_paths, test_labels, _ = list_image_folder(test_dir, classes)
    train_idx, val_idx = split_indices(len(train_labels), cfg["val_fraction"], seed)
    chosen = {
        "train": (train_paths, train_labels, subset(train_idx, cfg.get("train_subset"), seed + 1)),
        "val": (train_paths, train_labels, subset(val_idx, cfg.get("val_subset"), seed + 2)),
        "test": (test_paths, test_labels, subset(np.arange(len(test_labels)), cfg.get("test_subset"), seed + 3)),
    }
    resize_short = cfg.get("resize_short")
    for split, (all_paths, labels, idx) in chosen.items():
        files = [all_paths[i] for i in idx]
        out = np.lib.format.open_memmap(paths[f"{split}_images"], mode="w+", dtype=np.uint8,
                                        shape=(len(files), size, size, channels))
        decode_images(files, size, channels, resize_short, workers, out=out)
        out.flush()
        del out
        with open(paths[f"{split}_labels"], "wb") as f:  # a file object: np.save would append .npy to the name
            np.save(f, labels[idx])
    return classes, f"image folders in {root}"


def sample_split(cache_dir: str | Path, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images and labels drawn from a cached split (seeded, without replacement).

    Splits are stored class by class, so their first ``n`` images would all be of one class:
    calibration and export checks use this sample instead."""
    images, labels = load_split(cache_dir, split)
    n = min(int(n), len(labels))
    index = np.sort(np.random.default_rng(seed).choice(len(labels), size=n, replace=False))
    return np.asarray(images[index]), np.asarray(labels[index])


def load_split(cache_dir: str | Path, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 NHWC, memory-mapped) and labels of one cached split."""
    paths = cache_paths(cache_dir)
    for key in (f"{split}_images", f"{split}_labels"):
        if not paths[key].exists():
            raise DatasetError(f"dataset cache file {paths[key]} is missing. Re-run the prepare_data rule.")
    try:
        images = np.load(paths[f"{split}_images"], mmap_mode="r" if mmap else None)
        labels = np.load(paths[f"{split}_labels"])
    except (ValueError, OSError) as err:
        raise DatasetError(f"dataset cache in {cache_dir} is corrupt ({err}). Delete it and re-run prepare_data.") from err
    return images, labels


def load_meta(cache_dir: str | Path) -> dict:
    """The metadata ``prepare_dataset`` wrote for the cache at ``cache_dir``."""
    path = cache_paths(cache_dir)["meta"]
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


def check_enough_for_one_batch(n_images: int, batch_size: int, what: str) -> None:
    """Raise when ``what`` (a split) has fewer images than one batch: with drop_last it would train on nothing."""
    if n_images < batch_size:
        raise DatasetError(f"{what} has {n_images} images, fewer than one batch of {batch_size}. Lower "
                           "training.batch_size or use more data (dataset.train_subset).")


# --------------------------------------------------------------------------- ImageNet


def read_imagenet_ground_truth(path: str | Path, synsets: str | Path | None = None) -> dict[str, str]:
    """Map validation file stem -> wnid from one of ILSVRC-2012's ground-truth lists.

    Accepted: ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with the wnid first); a text
    file of ``<file> <wnid>`` lines; or the devkit's ``ILSVRC2012_validation_ground_truth.txt``
    (one ILSVRC2012_ID per line, in file order) together with ``synsets``, a text file listing the
    wnids in ILSVRC2012_ID order (1-based, the first 1000 synsets of the devkit's meta.mat).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"ImageNet ground-truth list {path} does not exist; set dataset.imagenet_val_ground_truth.")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if lines and lines[0].startswith("ImageId"):
        return {row.split(",")[0]: row.split(",")[1].split()[0] for row in lines[1:]}
    if all(line.isdigit() for line in lines):
        if synsets is None:
            raise DatasetError(f"{path} lists class IDs only; also give the synset list (wnids in ILSVRC2012_ID order).")
        wnids = [line.split()[0] for line in Path(synsets).read_text().splitlines() if line.strip()]
        return {f"ILSVRC2012_val_{i + 1:08d}": wnids[int(cls) - 1] for i, cls in enumerate(lines)}
    mapping = {}
    for number, line in enumerate(lines, 1):
        parts = line.replace(",", " ").split()
        if len(parts) < 2:
            raise DatasetError(f"{path}:{number}: expected '<file> <wnid>', got {line!r}.")
        mapping[Path(parts[0]).stem] = parts[1]
    return mapping


def organize_imagenet_val(flat_dir: str | Path, ground_truth: dict[str, str], out_dir: str | Path) -> Path:
    """Sort a flat ILSVRC-2012 ``val/`` folder into ``out_dir/<wnid>/`` with symbolic links."""
    flat_dir, out_dir = Path(flat_dir), Path(out_dir)
    files = sorted(p for p in flat_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    missing = [p.name for p in files if p.stem not in ground_truth]
    if missing:
        raise DatasetError(f"{len(missing)} validation images (e.g. {missing[0]}) are not in the ground-truth list.")
    for p in files:
        target = out_dir / ground_truth[p.stem] / p.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(p.resolve())
    return out_dir


def extract_imagenet_tars(train_tar: str | Path, val_tar: str | Path, out_root: str | Path) -> Path:
    """Unpack ILSVRC2012_img_train.tar (one tar per class inside) and ILSVRC2012_img_val.tar."""
    import tarfile

    out_root = Path(out_root)
    with tarfile.open(train_tar) as outer:
        for member in outer:
            if not member.name.endswith(".tar"):
                continue
            wnid = Path(member.name).stem
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                inner.extractall(out_root / "train" / wnid, filter="data")
    with tarfile.open(val_tar) as val:
        val.extractall(out_root / "val", filter="data")
    return out_root
