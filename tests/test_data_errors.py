"""Bad dataset inputs fail early with a DatasetError naming the file and the fix; the cache is written atomically."""
import pickle
import re

import numpy as np
import pytest

from conftest import dataset_cfg, write_idx
from twindnn import data

BASE = dataset_cfg(val_fraction=0.25, seed=0)


def _raises(path_or_text, call, *args, **kwargs):
    """``call`` raises DatasetError whose message names ``path_or_text``; returns the message."""
    with pytest.raises(data.DatasetError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert str(path_or_text) in message, message
    return message


def _folder_cfg(root, **extra):
    return {**BASE, "name": "imagenet", "root": str(root), "image_size": 16, **extra}


def _cifar_batches(root, rows=3072, labels=None, drop=None):
    rng = np.random.default_rng(1)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, rows), dtype=np.uint8),
                 "labels": list(labels if labels is not None else rng.integers(0, 10, 4))}
        batch.pop(drop, None)
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    return base


# ---------------------------------------------------------------- image folders


def test_empty_class_folder_is_named(image_folder, tmp_path):
    empty = image_folder / "train" / "emu"
    for f in empty.iterdir():
        f.unlink()
    message = _raises(empty, data.prepare_dataset, _folder_cfg(image_folder), tmp_path / "c")
    assert "no image files" in message and "remove the folder" in message


def test_hidden_folder_is_not_a_class(image_folder, tmp_path):
    (image_folder / "train" / ".ipynb_checkpoints").mkdir()
    assert data.prepare_dataset(_folder_cfg(image_folder), tmp_path / "c")["classes"] == ["cat", "dog", "emu"]


def test_class_only_in_held_out_split(image_folder, tmp_path):
    from PIL import Image

    (image_folder / "val" / "yak").mkdir()
    Image.new("RGB", (8, 8)).save(image_folder / "val" / "yak" / "0.png")
    message = _raises(image_folder / "val", data.prepare_dataset, _folder_cfg(image_folder), tmp_path / "c")
    assert "['yak']" in message and str(image_folder / "train" / "yak") in message


def test_class_missing_from_held_out_split(image_folder, tmp_path):
    for f in (image_folder / "val" / "dog").iterdir():
        f.unlink()
    (image_folder / "val" / "dog").rmdir()
    message = _raises(image_folder / "val" / "dog", data.prepare_dataset, _folder_cfg(image_folder), tmp_path / "c")
    assert "['dog']" in message and "training split" in message


def test_class_subset_ignores_extra_held_out_classes(image_folder, tmp_path):
    """class_subset keeps the first classes of train; the held-out split still has all of them."""
    meta = data.prepare_dataset(_folder_cfg(image_folder, class_subset=2), tmp_path / "c")
    assert meta["classes"] == ["cat", "dog"] and meta["test_count"] == 6


# ---------------------------------------------------------------- IDX and CIFAR pickles


def test_idx_label_out_of_range(idx_dataset, tmp_path):
    labels = idx_dataset / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, np.array([0, 1, 10] + [2] * 17, np.uint8))
    cfg = {**BASE, "name": "fashion_mnist", "root": str(idx_dataset)}
    message = _raises(labels, data.prepare_dataset, cfg, tmp_path / "c")
    assert "[0, 10]" in message and "10 classes" in message


def test_idx_labels_file_with_images_shape(idx_dataset, tmp_path):
    labels = idx_dataset / "train-labels-idx1-ubyte.gz"
    write_idx(labels, np.zeros((60, 28, 28), np.uint8))
    _raises(labels, data.read_idx_dataset, idx_dataset, data.DATASET_INFO["fashion_mnist"]["classes"])


def test_cifar_label_out_of_range(tmp_path):
    base = _cifar_batches(tmp_path, labels=[0, 1, 2, 10])
    message = _raises(base / "data_batch_1", data.read_cifar_pickles, tmp_path)
    assert "10 classes" in message


def test_cifar_negative_label(tmp_path):
    base = _cifar_batches(tmp_path, labels=[0, -1, 2, 3])
    _raises(base / "data_batch_1", data.read_cifar_pickles, tmp_path)


def test_name_cifar10_on_fashion_mnist_idx_files(idx_dataset, tmp_path):
    cfg = {**BASE, "name": "cifar10", "root": str(idx_dataset)}
    message = _raises(idx_dataset / "train-images-idx3-ubyte.gz", data.prepare_dataset, cfg, tmp_path / "c")
    assert "'cifar10'" in message and "(28, 28, 1)" in message and "(32, 32, 3)" in message
    assert "dataset.name to 'fashion_mnist'" in message
    assert not (tmp_path / "c" / "meta.json").exists()


def test_idx_images_of_wrong_side(idx_dataset, tmp_path):
    images = idx_dataset / "t10k-images-idx3-ubyte.gz"
    write_idx(images, np.zeros((20, 32, 32), np.uint8))
    cfg = {**BASE, "name": "fashion_mnist", "root": str(idx_dataset)}
    message = _raises(images, data.prepare_dataset, cfg, tmp_path / "c")
    assert "(32, 32, 1)" in message and "(28, 28, 1)" in message


def test_name_fashion_mnist_on_cifar_pickles(tmp_path):
    base = _cifar_batches(tmp_path / "cifar")
    cfg = {**BASE, "name": "fashion_mnist", "root": str(tmp_path / "cifar")}
    message = _raises(base / "data_batch_1", data.prepare_dataset, cfg, tmp_path / "c")
    assert "'fashion_mnist'" in message and "dataset.name to 'cifar10'" in message


def test_cifar_rows_of_wrong_size(tmp_path):
    base = _cifar_batches(tmp_path, rows=784)
    message = _raises(base / "data_batch_1", data.read_cifar_pickles, tmp_path)
    assert "(4, 784)" in message


def test_truncated_idx_header(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))  # declares 3 dimensions, holds half of one
    message = _raises(path, data.read_idx, path)
    assert "truncated" in message and "Re-download" in message


@pytest.mark.parametrize("key", ["data", "labels"])
def test_cifar_batch_without_key(tmp_path, key):
    base = _cifar_batches(tmp_path, drop=key)
    message = _raises(base / "data_batch_1", data.read_cifar_pickles, tmp_path)
    assert repr([key]) in message


# ---------------------------------------------------------------- cache


def test_invalid_meta_json(idx_dataset, tmp_path):
    cache = tmp_path / "c"
    data.prepare_dataset({**BASE, "name": "fashion_mnist", "root": str(idx_dataset)}, cache)
    meta = cache / "meta.json"
    meta.write_text(meta.read_text()[:40])
    message = _raises(meta, data.load_meta, cache)
    assert re.search(r"Delete the cache folder .* re-run prepare_data", message)
    meta.write_text("[1, 2]")
    _raises(meta, data.load_meta, cache)
    meta.unlink()
    assert "prepare_data" in _raises(meta, data.load_meta, cache)


def _final_files(cache):
    return sorted(p.name for p in data.cache_paths(cache).values() if p.exists())


def test_killed_image_folder_prepare_leaves_no_final_files(image_folder, tmp_path, monkeypatch):
    """The memory map is filled by decode_images: fail halfway through the second split."""
    real = data.decode_images
    calls = []

    def dies_midway(paths, size, channels, resize_short=None, workers=1, out=None, progress=True):
        calls.append(len(paths))
        if len(calls) == 2:
            out[: len(paths) // 2] = 7
            raise KeyboardInterrupt("killed")
        return real(paths, size, channels, resize_short, workers, out, progress)

    monkeypatch.setattr(data.cache, "decode_images", dies_midway)
    cache = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        data.prepare_dataset(_folder_cfg(image_folder), cache)
    assert _final_files(cache) == []
    assert list(cache.iterdir()) == []  # the temporary files were removed too


def test_failed_prepare_keeps_previous_cache(idx_dataset, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    cfg = {**BASE, "name": "fashion_mnist", "root": str(idx_dataset)}
    before = data.prepare_dataset(cfg, cache)
    monkeypatch.setattr(data.cache, "_resize_array", lambda images, size: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        data.prepare_dataset({**cfg, "image_size": 32}, cache)
    assert data.load_meta(cache) == before and data.load_split(cache, "train")[0].shape[1] == 28


def test_prepare_leaves_no_temporary_files(image_folder, idx_dataset, tmp_path):
    data.prepare_dataset(_folder_cfg(image_folder), tmp_path / "a")
    data.prepare_dataset({**BASE, "name": "fashion_mnist", "root": str(idx_dataset)}, tmp_path / "b")
    expected = sorted(p.name for p in data.cache_paths(tmp_path / "a").values())
    for cache in (tmp_path / "a", tmp_path / "b"):
        assert sorted(p.name for p in cache.iterdir()) == expected


# ---------------------------------------------------------------- batch size


def test_check_enough_for_one_batch():
    data.check_enough_for_one_batch(64, 64, "train split")
    message = _raises("train split has 10 images", data.check_enough_for_one_batch, 10, 64, "train split")
    assert "batch of 64" in message and "training.batch_size" in message and "dataset.train_subset" in message
