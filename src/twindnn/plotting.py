"""The one way figures are laid out and saved (no pyplot global state, no display backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def save_figure(fig: Figure, out: str | Path, title: str | None = None, dpi: int = 150) -> None:
    """Save ``fig`` to ``out`` (folders made), with ``title`` as its suptitle."""
    if title:
        fig.suptitle(title, fontsize=9)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")


def twin_colours(twins) -> dict:
    """One colour per twin name, the same in every figure of every run: the names sorted, then
    seaborn's colour-blind palette in that order."""
    import seaborn as sns  # deferred: only figures need it

    names = sorted(dict.fromkeys(str(t) for t in twins))
    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1))))


def panels(n: int, width: float = 4.5, height: float = 3.6) -> tuple[Figure, np.ndarray]:
    """A figure of ``n`` panels side by side, and their axes."""
    fig = Figure(figsize=(width * max(n, 1), height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(n, 1), squeeze=False)[0])
    return fig, axes
