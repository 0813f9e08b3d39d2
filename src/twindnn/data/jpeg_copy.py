"""An image-folder JPEG copy of CIFAR-10 from its official python release, like the copy behind the
committed CIFAR-10 runs ("CIFAR-10 (JPEG copy)": every image re-encoded once as a 32x32 JPEG at
quality 75, ``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg``, classes in label order).

You do not need it to run anything: the configs read the official release as it is. It exists so
that the committed numbers can be checked on the same kind of pixels::

    python -m twindnn.data.jpeg_copy data/cifar-10-batches-py data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from .readers import read_cifar_pickles


def write_image_folder(images: np.ndarray, labels: np.ndarray, classes: list[str], out_dir: Path,
                       quality: int = 75) -> int:
    """``images`` (uint8 N, H, W, 3) as ``out_dir/<class>/NNNN.jpg`` (numbered within each class);
    the number of files written."""
    counters = {c: 0 for c in classes}
    for image, label in zip(images, labels):
        name = classes[int(label)]
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{counters[name]:04d}.jpg", quality=quality)
        counters[name] += 1
    return sum(counters.values())


def make_jpeg_copy(release: Path, out: Path, quality: int = 75) -> dict[str, int]:
    """The JPEG copy of the CIFAR-10 python release at ``release`` in ``out`` (train/ and test/)."""
    raw = read_cifar_pickles(Path(release))
    return {split: write_image_folder(*getattr(raw, split), raw.classes, Path(out) / split, quality)
            for split in ("train", "test")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", type=Path, help="folder of the python batches (cifar-10-batches-py)")
    parser.add_argument("out", type=Path, help="where train/<class>/ and test/<class>/ go")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality (the committed copy: 75)")
    args = parser.parse_args(argv)
    counts = make_jpeg_copy(args.release, args.out, args.quality)
    print(f"wrote {counts['train']} train and {counts['test']} test images to {args.out}")


if __name__ == "__main__":
    main()
