"""The dataset readers, one per on-disk format, in a registry keyed by ``dataset.format``.

A reader turns a local copy (or a download) into a :class:`RawDataset`; the cache writer
(:mod:`twindnn.data.cache`) splits it and writes the cache. Register one with
``@register_reader("name")``; its name is a value of the schema's ``dataset.format`` enum
(``auto`` picks one with :func:`detect_format`).
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .base import DATASET_INFO, IMAGE_SUFFIXES, DatasetError, RawDataset
from .imagenet import organize_imagenet_val, read_imagenet_ground_truth

# A reader: (root, the dataset section of the config, a folder for its helper files) -> RawDataset.
Reader = Callable[[Path, Mapping, Path], RawDataset]
_READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator: register a reader for ``dataset.format: name``."""

    def register(reader: Reader) -> Reader:
        if name in _READERS:
            raise ValueError(f"a dataset reader named {name!r} is already registered")
        _READERS[name] = reader
        return reader

    return register


def reader_names() -> list[str]:
    """The registered formats, in registration order (``auto`` is not one: it picks one)."""
    return list(_READERS)


def get_reader(name: str) -> Reader:
    """The reader of ``dataset.format: name``; an unknown name is a DatasetError naming the known ones."""
    if name not in _READERS:
        known = reader_names()
        raise DatasetError(f"unknown dataset.format {name!r}; use auto, {', '.join(known[:-1])} or {known[-1]}.")
    return _READERS[name]


# --------------------------------------------------------------------------- file formats


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


# --------------------------------------------------------------------------- the registry


@register_reader("idx")
def read_idx_format(root: Path, cfg: Mapping, work_dir: Path) -> RawDataset:
    """The four (Fashion-)MNIST IDX files in ``root``."""
    name = cfg["name"]
    return read_idx_dataset(root, DATASET_INFO[name]["classes"] or [], name)


@register_reader("pickle")
def read_pickle_format(root: Path, cfg: Mapping, work_dir: Path) -> RawDataset:
    """The CIFAR-10 python batches in ``root`` (or ``root/cifar-10-batches-py``)."""
    return read_cifar_pickles(root, cfg["name"])


@register_reader("image_folder")
def read_image_folder(root: Path, cfg: Mapping, work_dir: Path) -> RawDataset:
    """``root/train/<class>/*`` and ``root/test|val/<class>/*``, as lists of image files (the cache
    writer decodes them). A flat ILSVRC-2012 ``val/`` is sorted into ``work_dir/val_by_class``."""
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if test_dir is not None and not any(p.is_dir() for p in test_dir.iterdir()):
        # A flat ILSVRC-2012 val/ folder: sort it into class folders from the ground-truth list.
        if not cfg["imagenet_val_ground_truth"]:
            raise DatasetError(f"{test_dir} has no class folders. Set dataset.imagenet_val_ground_truth to the "
                               "ILSVRC-2012 validation ground-truth list to sort it.")
        truth = read_imagenet_ground_truth(cfg["imagenet_val_ground_truth"], cfg["imagenet_synsets"])
        test_dir = organize_imagenet_val(test_dir, truth, work_dir / "val_by_class")
    if test_dir is None:
        raise DatasetError(f"{root} has train/ but neither test/ nor val/. Add the held-out split as {root}/val/<class>/.")
    train_paths, train_labels, classes = list_image_folder(root / "train")
    extra = sorted(set(_class_dirs(test_dir)) - set(classes))
    if extra:
        # Labels follow the training classes: a held-out-only class has no label and could never be right.
        raise DatasetError(f"{test_dir} has class folders {extra[:5]} that {root / 'train'} lacks. Add "
                           f"{root / 'train' / extra[0]}/ with training images, or remove {test_dir / extra[0]}/.")
    if cfg["class_subset"]:
        keep = classes[: int(cfg["class_subset"])]
        mask = np.isin(train_labels, np.arange(len(keep)))
        train_paths = [p for p, m in zip(train_paths, mask) if m]
        train_labels, classes = train_labels[mask], keep
    test_paths, test_labels, _ = list_image_folder(test_dir, classes)
    return RawDataset((train_paths, train_labels), (test_paths, test_labels), classes, f"image folders in {root}")


@register_reader("torchvision")
def read_torchvision(root: Path, cfg: Mapping, work_dir: Path) -> RawDataset:
    """Download (Fashion-MNIST, CIFAR-10) with torchvision into ``root``."""
    import torchvision  # deferred: heavy, and only a download needs it

    name = cfg["name"]
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


# --------------------------------------------------------------------------- auto


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
