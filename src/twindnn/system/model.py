"""System model of TwinDNN on one FPGA: throughput and accuracy from the two networks' rates.

With twin rate ``r_t``, original rate ``r_o`` (frames/s) and forwarded fraction ``f`` (share of
the inputs the twin sees that its gate sends to the original), the schedulers are:

- ``work_sharing`` (the paper's, from the authors' host program in github.com/jeonghm9764/TwinDNN): both
  run at once; an idle original takes the next *new* input itself. While ``f r_t <= r_o``:
  ``fps = r_t (1 - f) + r_o``; otherwise the twin waits on the queue and ``fps = r_o / f``.
  Inputs the original takes directly get the original's accuracy (:func:`system_accuracy`).
- ``twin_first``: every input goes through the twin, the original only sees forwarded ones:
  ``fps = min(r_t, r_o / f)``.

Baselines (formulas here, designs in :mod:`twindnn.hardware.colocate`):

- time-shared Big/Little: each network gets the whole device in turn (``R_t``, ``R_o`` its best
  whole-device designs); a batch of ``B`` inputs costs ``B / R_t + f B / R_o`` plus two switches
  of ``switch_ms`` (none when ``f = 0``): :func:`time_shared_fps`. Its bound as the batch grows
  is ``1 / (1 / R_t + f / R_o)`` (:func:`time_shared_bound_fps`); at a latency budget ``L`` the
  batch is the largest whose input latency stays within ``L``: an input waits while its batch
  fills (one round at the steady rate), then for its round less the switch back (a forwarded
  input is answered before it), ``2 round - switch``
  (:func:`time_shared_at_latency`). ``switch_ms`` is an assumption (the time to load a partial
  bitstream; not measured here).
- the original alone, the twin alone.

Formulas only: no tables and no imports from the package, so every other module may use them.
"""

from __future__ import annotations

import numpy as np

SOURCE_ESTIMATE = "FINN+ estimate"
SOURCE_MEASURED = "measured on board"


def _f(forwarded_fraction):
    f = np.asarray(forwarded_fraction, dtype=np.float64)
    if np.any(f < 0) or np.any(f > 1):
        raise ValueError("forwarded_fraction must lie in [0, 1]")
    return f


def _out(x):
    return float(x) if np.ndim(x) == 0 else x


def work_sharing_fps(fps_twin, fps_original, forwarded_fraction):
    """The paper's scheduler: ``r_t (1 - f) + r_o`` while ``f r_t <= r_o``, else ``r_o / f``."""
    r_t, r_o, f = np.asarray(fps_twin, dtype=np.float64), np.asarray(fps_original, dtype=np.float64), \
        _f(forwarded_fraction)
    with np.errstate(divide="ignore", invalid="ignore"):
        queue_bound = np.where(f > 0, r_o / np.where(f > 0, f, 1.0), np.inf)
        return _out(np.where(f * r_t <= r_o, r_t * (1 - f) + r_o, queue_bound))


def twin_first_fps(fps_twin, fps_original, forwarded_fraction):
    """Every input through the twin first: ``min(r_t, r_o / f)``."""
    r_t, r_o, f = np.asarray(fps_twin, dtype=np.float64), np.asarray(fps_original, dtype=np.float64), \
        _f(forwarded_fraction)
    with np.errstate(divide="ignore"):
        return _out(np.minimum(r_t, np.where(f > 0, r_o / np.where(f > 0, f, 1.0), np.inf)))


SCHEDULERS = {"work_sharing": work_sharing_fps, "twin_first": twin_first_fps}


def system_fps(fps_twin, fps_original, forwarded_fraction, scheduler: str = "work_sharing"):
    """System throughput (frames/s) of one of :data:`SCHEDULERS`."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler {scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[scheduler](fps_twin, fps_original, forwarded_fraction)


def original_direct_share(fps_twin, fps_original, forwarded_fraction, scheduler: str = "work_sharing"):
    """Share of the system's answers that the original gives to inputs it took directly (work sharing)."""
    if scheduler != "work_sharing":
        return _out(np.zeros(np.broadcast(fps_twin, fps_original, forwarded_fraction).shape))
    r_t, r_o, f = np.asarray(fps_twin, dtype=np.float64), np.asarray(fps_original, dtype=np.float64), \
        _f(forwarded_fraction)
    direct = np.maximum(r_o - f * r_t, 0.0)
    return _out(direct / work_sharing_fps(r_t, r_o, f))


def system_accuracy(cascade_accuracy, original_accuracy, fps_twin, fps_original, forwarded_fraction,
                    scheduler: str = "work_sharing"):
    """Accuracy of the mix a scheduler produces.

    ``cascade_accuracy`` is the gate's accuracy on the inputs the twin sees (confident ones
    answered by the twin, forwarded ones by the original); under work sharing the original's
    direct share (:func:`original_direct_share`) gets ``original_accuracy`` instead.
    """
    d = np.asarray(original_direct_share(fps_twin, fps_original, forwarded_fraction, scheduler))
    return _out((1 - d) * np.asarray(cascade_accuracy) + d * np.asarray(original_accuracy))


def time_shared_fps(fps_twin_alone, fps_original_alone, forwarded_fraction, switch_ms: float, batch: int):
    """Big/Little time-shared: each network has the whole device in turn, batch by batch."""
    f = _f(forwarded_fraction)
    seconds = batch / np.asarray(fps_twin_alone, dtype=np.float64) \
        + f * batch / np.asarray(fps_original_alone, dtype=np.float64) + np.where(f > 0, 2 * switch_ms / 1e3, 0.0)
    return _out(batch / seconds)


def time_shared_bound_fps(fps_twin_alone, fps_original_alone, forwarded_fraction):
    """Time-shared Big/Little as the batch grows without end (the switches amortised away)."""
    f = _f(forwarded_fraction)
    return _out(1.0 / (1.0 / np.asarray(fps_twin_alone, dtype=np.float64)
                       + f / np.asarray(fps_original_alone, dtype=np.float64)))


def time_shared_at_latency(fps_twin_alone: float, fps_original_alone: float, forwarded_fraction: float,
                           switch_ms: float, latency_budget_ms: float) -> dict:
    """Time-shared Big/Little at the largest batch whose input latency (``2 round - switch``: the
    batch filling, then its round up to the forwarded inputs' answers) meets ``latency_budget_ms``:
    {"batch", "fps", "latency_ms", "meets"}. Where not even a batch of one meets it, the batch of
    one (``meets`` False)."""
    f = float(_f(forwarded_fraction))
    per_input = 1.0 / float(fps_twin_alone) + f / float(fps_original_alone)
    switch = float(switch_ms) / 1e3 if f > 0 else 0.0
    # 2 (B p + 2 s) - s <= L  <=>  B <= (L - 3 s) / (2 p)
    batch = int(np.floor((float(latency_budget_ms) / 1e3 - 3 * switch) / (2 * per_input) + 1e-9))
    meets = batch >= 1
    batch = max(batch, 1)
    round_s = batch * per_input + 2 * switch
    return {"batch": batch, "fps": time_shared_fps(fps_twin_alone, fps_original_alone, f, switch_ms, batch),
            "latency_ms": (2 * round_s - switch) * 1e3, "meets": meets}


def mean_latency_ms(latency_twin_ms, latency_original_ms, forwarded_fraction):
    """Mean per-input latency of the twin-first path: the twin always, the original for the forwarded share."""
    return np.asarray(latency_twin_ms) + np.asarray(forwarded_fraction) * np.asarray(latency_original_ms)
