"""Image decoding: one file to a uint8 array, and many in parallel worker processes."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .base import DatasetError


def decode_image(path: Path, size: int, channels: int, resize_short: int | None = None) -> np.ndarray:
    """Decode one image to uint8 (size, size, channels).

    ``resize_short``: resize the short side to this first, then centre-crop ``size``
    (ImageNet style); by default the image is resized straight to size x size.
    """
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
