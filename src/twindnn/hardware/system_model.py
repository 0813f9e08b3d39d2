"""System model of TwinDNN on one FPGA: throughput and latency from the two networks' figures.

With ``f`` the forwarded fraction (share of inputs the gate sends to the original):

- TwinDNN, both networks running at once (the paper's design):
  ``fps = min(fps_twin, fps_original / f)``;
- Big/Little, the same two networks one after the other on the same device:
  ``fps = 1 / (1 / fps_twin + f / fps_original)``;
- mean latency (every input passes the twin, a share ``f`` then the original):
  ``latency = latency_twin + f * latency_original``;
- the original alone (whole device), the twin alone (whole device), and the oracle gate
  (forwards exactly the inputs the twin gets wrong).

Formulas only: no tables and no imports from the package, so every other module may use it.
The per-operating-point table is ``twindnn.hardware.colocate.system_rows``.
"""

from __future__ import annotations

import numpy as np

SOURCE_ESTIMATE = "FINN+ estimate"
SOURCE_MEASURED = "measured on board"


def system_fps(fps_twin, fps_original, forwarded_fraction, mode: str = "parallel"):
    """TwinDNN system throughput in frames/s (``parallel`` or ``sequential`` = Big/Little)."""
    fps_twin, fps_original, f = (np.asarray(x, dtype=np.float64) for x in (fps_twin, fps_original,
                                                                          forwarded_fraction))
    if np.any(f < 0) or np.any(f > 1):
        raise ValueError("forwarded_fraction must lie in [0, 1]")
    with np.errstate(divide="ignore"):
        if mode == "parallel":
            out = np.minimum(fps_twin, np.where(f > 0, fps_original / np.where(f > 0, f, 1.0), np.inf))
        elif mode == "sequential":
            out = 1.0 / (1.0 / fps_twin + f / fps_original)
        else:
            raise ValueError(f"mode {mode!r}: expected 'parallel' or 'sequential'")
    return float(out) if out.ndim == 0 else out


def mean_latency_ms(latency_twin_ms, latency_original_ms, forwarded_fraction):
    """Mean per-input latency: the twin always, the original for the forwarded share."""
    return np.asarray(latency_twin_ms) + np.asarray(forwarded_fraction) * np.asarray(latency_original_ms)
