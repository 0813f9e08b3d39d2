"""One dataset interface for Fashion-MNIST, CIFAR-10 and ImageNet.

Every source is decoded once into a cache of uint8 ``.npy`` arrays (N, H, W, C)
plus int64 labels, one file pair per split (``train``, ``val``, ``test``).
Training reads the cache through memory maps, so epochs never re-decode images.
The ``val`` split is carved from the training set with a fixed seed; it is the
split on which gate thresholds are chosen. ``test`` is only ever reported.

The package is the bottom layer of :mod:`twindnn`: it imports no other twindnn module.

- :mod:`.readers`: a reader per ``dataset.format`` (``idx``, ``pickle``, ``image_folder``,
  ``torchvision``) in a registry (:func:`register_reader`, :func:`get_reader`), and
  :func:`detect_format` for ``auto``;
- :mod:`.decode`: image files to uint8 arrays, in parallel;
- :mod:`.split`: the seeded train/val split and subsets (:func:`split_and_subset`);
- :mod:`.cache`: the cache writer (:func:`prepare_dataset`), its readers by folder
  (:func:`load_split`) or by a step's declared inputs (:func:`read_split`), and the training
  :class:`CachedImages` dataset;
- :mod:`.imagenet`: ILSVRC-2012 ground truth, flat val/ folder and tar files;
- :mod:`.base`: the dataset facts, :class:`DatasetError` and :class:`RawDataset`.
"""

from .base import DATASET_INFO, IMAGE_SUFFIXES, SPLITS, DatasetError, RawDataset
from .cache import (
                    CACHE_FILES,
                    CachedImages,
                    cache_paths,
                    check_enough_for_one_batch,
                    load_meta,
                    load_split,
                    prepare_dataset,
                    prepare_dataset_files,
                    read_meta,
                    read_split,
                    sample_split,
                    sample_split_of,
                    split_paths,
                    training_datasets,
)
from .decode import decode_image, decode_images
from .imagenet import extract_imagenet_tars, organize_imagenet_val, read_imagenet_ground_truth
from .readers import (
                    detect_format,
                    get_reader,
                    list_image_folder,
                    read_cifar_pickles,
                    read_idx,
                    read_idx_dataset,
                    read_image_folder,
                    read_torchvision,
                    reader_names,
                    register_reader,
)
from .split import split_and_subset, split_indices, subset

__all__ = [
    "CACHE_FILES", "DATASET_INFO", "IMAGE_SUFFIXES", "SPLITS", "CachedImages", "DatasetError", "RawDataset",
    "cache_paths", "check_enough_for_one_batch", "decode_image", "decode_images", "detect_format",
    "extract_imagenet_tars", "get_reader", "list_image_folder", "load_meta", "load_split", "organize_imagenet_val",
    "prepare_dataset", "prepare_dataset_files", "read_cifar_pickles", "read_idx", "read_idx_dataset",
    "read_image_folder", "read_imagenet_ground_truth", "read_meta", "read_split", "read_torchvision",
    "reader_names", "register_reader", "sample_split", "sample_split_of", "split_and_subset", "split_indices",
    "split_paths", "subset", "training_datasets",
]
