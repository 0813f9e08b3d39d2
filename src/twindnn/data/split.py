"""Which images go into which cached split: a seeded train/val split, then seeded subsets."""

from __future__ import annotations

import numpy as np


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


def split_and_subset(n_train: int, n_test: int, val_fraction: float, seed: int, train_subset: int | None = None,
                     val_subset: int | None = None, test_subset: int | None = None) -> dict[str, np.ndarray]:
    """The indices of each cached split, by split name (``train``, ``val``, ``test``).

    ``train`` and ``val`` index the ``n_train`` images of the source's training set, split by
    ``val_fraction`` with ``seed``; ``test`` indexes its ``n_test`` test images. Each split is then
    cut to its seeded subset (``None``: all of it), with seeds ``seed + 1``, ``+ 2``, ``+ 3``.
    """
    train_idx, val_idx = split_indices(n_train, val_fraction, seed)
    return {
        "train": subset(train_idx, train_subset, seed + 1),
        "val": subset(val_idx, val_subset, seed + 2),
        "test": subset(np.arange(n_test), test_subset, seed + 3),
    }
