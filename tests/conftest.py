import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# A CIFAR-10 JPEG copy as a tarball (README, "The CIFAR-10 JPEG copy"): named by TWINDNN_CIFAR10_JPEG_TAR,
# else the first data/cifar10-jpeg.tar.gz in a folder beside the checkout; the tests that use it skip
# without one.
SHARED_CIFAR = Path(os.environ.get("TWINDNN_CIFAR10_JPEG_TAR") or next(
    iter(sorted(ROOT.parent.glob("*/data/cifar10-jpeg.tar.gz"))), ROOT / "data" / "cifar10-jpeg.tar.gz"))
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def dataset_cfg(**keys) -> dict:
    """A ``dataset`` section as the library gets it from the workflow: the schema's defaults, then ``keys``."""
    props = yaml.safe_load(SCHEMA.read_text())["properties"]["dataset"]["properties"]
    return {**{key: p["default"] for key, p in props.items() if "default" in p}, **keys}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped when the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.fixture
def idx_dataset(tmp_path):
    """A Fashion-MNIST-shaped IDX dataset (60 train, 20 test images of 28x28) with learnable labels."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fmnist"
    root.mkdir()
    for split, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = (rng.integers(0, 40, (n, 28, 28)) + labels[:, None, None] * 20).astype(np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def image_folder(tmp_path):
    """train/<class>/*.png and val/<class>/*.png, 3 classes, 40x36 RGB images of distinct colours."""
    from PIL import Image

    root = tmp_path / "folder"
    colours = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}
    for split, n in (("train", 8), ("val", 3)):
        for name, rgb in colours.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40, 36), tuple(min(255, c + i) for c in rgb)).save(d / f"{i:03d}.png")
    return root
