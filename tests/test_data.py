import pickle
import tarfile

import numpy as np
import pytest

from conftest import SHARED_CIFAR, dataset_cfg
from twindnn import data

BASE = dataset_cfg(val_fraction=0.25, seed=0)


def test_read_idx_roundtrip(tmp_path):
    from conftest import write_idx

    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b", array)
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), array)
    assert np.array_equal(data.read_idx(tmp_path / "b"), array)


def test_truncated_idx_names_the_file(tmp_path):
    from conftest import write_idx

    write_idx(tmp_path / "x", np.zeros((4, 5), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-3])
    with pytest.raises(data.DatasetError, match=r"x is truncated"):
        data.read_idx(tmp_path / "x")


def test_prepare_idx_splits_and_subsets(idx_dataset, tmp_path):
    cfg = {**BASE, "name": "fashion_mnist", "root": str(idx_dataset), "image_size": 28, "test_subset": 10}
    meta = data.prepare_dataset(cfg, tmp_path / "cache")
    assert (meta["train_count"], meta["val_count"], meta["test_count"]) == (45, 15, 10)
    assert meta["format"] == "idx" and meta["channels"] == 1 and meta["num_classes"] == 10
    train_x, train_y = data.load_split(tmp_path / "cache", "train")
    val_x, val_y = data.load_split(tmp_path / "cache", "val")
    assert train_x.shape == (45, 28, 28, 1) and train_x.dtype == np.uint8
    # train and val are disjoint pieces of the training set: every image appears once.
    stacked = np.concatenate([train_x, val_x]).reshape(60, -1)
    assert len({row.tobytes() for row in stacked}) == 60
    # the same seed gives the same split; another seed another one
    data.prepare_dataset(cfg, tmp_path / "again")
    assert np.array_equal(data.load_split(tmp_path / "again", "val")[1], val_y)
    data.prepare_dataset({**cfg, "seed": 1}, tmp_path / "other")
    assert not np.array_equal(data.load_split(tmp_path / "other", "val")[0], val_x)


def test_sample_split_draws_across_classes(image_folder, tmp_path):
    """Splits are stored class by class; a calibration or check sample must not be one class."""
    data.prepare_dataset({**BASE, "name": "imagenet", "root": str(image_folder), "image_size": 16,
                          "resize_short": 16}, tmp_path / "c")
    images, labels = data.load_split(tmp_path / "c", "train")
    assert list(labels[:3]) == [0, 0, 0]  # the stored order: the first images are one class
    x, y = data.sample_split(tmp_path / "c", "train", 6)
    assert len(set(y.tolist())) > 1 and x.shape == (6, *images.shape[1:])
    x2, y2 = data.sample_split(tmp_path / "c", "train", 6)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)  # seeded
    assert len(data.sample_split(tmp_path / "c", "train", 10_000)[1]) == len(labels)


def test_resize_on_prepare(idx_dataset, tmp_path):
    cfg = {**BASE, "name": "fashion_mnist", "root": str(idx_dataset), "image_size": 32}
    data.prepare_dataset(cfg, tmp_path / "cache")
    assert data.load_split(tmp_path / "cache", "test")[0].shape == (20, 32, 32, 1)


def test_cifar_pickles(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, 4))}
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    raw = data.read_cifar_pickles(tmp_path)
    assert raw.train[0].shape == (20, 32, 32, 3) and raw.test[0].shape == (4, 32, 32, 3)
    # channel-last conversion: pixel (0, 0) of image 0 takes bytes 0, 1024, 2048 of its row
    with open(base / "data_batch_1", "rb") as f:
        row = pickle.load(f)["data"][0]
    assert list(raw.train[0][0, 0, 0]) == [row[0], row[1024], row[2048]]
    meta = data.prepare_dataset({**BASE, "name": "cifar10", "root": str(tmp_path), "image_size": 32}, tmp_path / "c")
    assert meta["format"] == "pickle" and meta["train_count"] == 15


def test_jpeg_copy_of_the_official_release_reads_back_through_the_image_folder_path(tmp_path):
    """twindnn.data.jpeg_copy: the pickle batches as train/<class>/NNNN.jpg at quality 75, which the
    image-folder reader takes with the same labels and nearly the same pixels."""
    from twindnn.data.jpeg_copy import main

    rng = np.random.default_rng(2)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    smooth = np.kron(rng.integers(40, 215, (11, 3, 4, 4)), np.ones((1, 1, 8, 8))).astype(np.uint8)  # JPEG-friendly
    classes = [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as f:
            pickle.dump({"data": smooth.reshape(11, 3072), "labels": classes}, f)
    main([str(base), str(tmp_path / "jpeg")])
    assert sorted(p.name for p in (tmp_path / "jpeg" / "train" / "cat").iterdir()) == [f"{i:04d}.jpg" for i in range(10)]
    meta = data.prepare_dataset({**BASE, "name": "cifar10", "root": str(tmp_path / "jpeg"), "image_size": 32},
                                tmp_path / "cache")
    assert meta["format"] == "image_folder" and meta["test_count"] == 11
    assert meta["train_count"] + meta["val_count"] == 55  # the val split comes out of train
    images, labels = data.load_split(tmp_path / "cache", "test")
    order = np.argsort(labels, kind="stable")
    assert labels[order].tolist() == classes
    original = smooth.transpose(0, 2, 3, 1)
    error = np.abs(images[order].astype(int) - original.astype(int)).mean()
    shuffled = np.abs(images[order].astype(int) - original[::-1].astype(int)).mean()
    assert 0 < error < 12 < shuffled  # lossy (chroma subsampling), but each image is its own


def test_image_folder(image_folder, tmp_path):
    cfg = {**BASE, "name": "imagenet", "root": str(image_folder), "image_size": 32, "resize_short": 36}
    meta = data.prepare_dataset(cfg, tmp_path / "cache")
    assert meta["classes"] == ["cat", "dog", "emu"] and meta["test_count"] == 9
    images, labels = data.load_split(tmp_path / "cache", "test")
    assert images.shape == (9, 32, 32, 3)
    # colour identifies the class: the dominant channel equals the label
    assert np.array_equal(images.reshape(9, -1, 3).mean(1).argmax(1), labels)


def test_unreadable_image_names_the_file(image_folder, tmp_path):
    bad = image_folder / "train" / "dog" / "005.png"
    bad.write_bytes(b"not an image")
    cfg = {**BASE, "name": "imagenet", "root": str(image_folder), "image_size": 32, "val_fraction": 0.5}
    with pytest.raises(data.DatasetError, match=r"005\.png"):
        data.prepare_dataset(cfg, tmp_path / "cache")


def test_missing_dataset_says_how_to_fix(tmp_path):
    cfg = {**BASE, "name": "cifar10", "root": str(tmp_path / "nowhere"), "image_size": 32, "download": False}
    with pytest.raises(data.DatasetError, match=r"nowhere does not exist.*dataset.root"):
        data.prepare_dataset(cfg, tmp_path / "cache")


def test_readers_are_the_schema_formats():
    """Every dataset.format of the schema but auto has a reader, and every reader a format."""
    import yaml

    from conftest import SCHEMA

    formats = yaml.safe_load(SCHEMA.read_text())["properties"]["dataset"]["properties"]["format"]["enum"]
    assert formats == ["auto", *data.reader_names()]
    with pytest.raises(data.DatasetError, match=r"'zip'; use auto, idx, pickle, image_folder or torchvision\.$"):
        data.get_reader("zip")


def test_missing_cache_file(tmp_path):
    with pytest.raises(data.DatasetError, match=r"train_images.npy is missing.*prepare_data"):
        data.load_split(tmp_path, "train")


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"real CIFAR-10 copy not found at {SHARED_CIFAR}")
def test_real_cifar10_jpeg_copy(tmp_path):
    """The shared CIFAR-10 (JPEG copy) through the image-folder path: all 50k/10k listed, classes in label order."""
    with tarfile.open(SHARED_CIFAR) as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "cifar10-jpeg"
    cfg = {**BASE, "name": "cifar10", "root": str(root), "image_size": 32, "val_fraction": 0.1,
           "train_subset": 500, "val_subset": 100, "test_subset": 1000}
    meta = data.prepare_dataset(cfg, tmp_path / "cache", workers=2)
    assert meta["classes"] == data.DATASET_INFO["cifar10"]["classes"]
    assert meta["format"] == "image_folder"
    _, test_labels = data.load_split(tmp_path / "cache", "test")
    assert len(test_labels) == 1000 and set(test_labels) == set(range(10))
    paths, labels, _ = data.list_image_folder(root / "train")
    assert len(paths) == 50000 and np.bincount(labels).tolist() == [5000] * 10
    # CIFAR-10's channel statistics (mean ~0.49, 0.48, 0.45)
    assert np.allclose(meta["mean"], [0.49, 0.48, 0.45], atol=0.03)
