"""ILSVRC-2012 tools: its validation ground-truth lists, its flat val/ folder, its tar files."""

from __future__ import annotations

import tarfile
from pathlib import Path

from .base import IMAGE_SUFFIXES, DatasetError


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
