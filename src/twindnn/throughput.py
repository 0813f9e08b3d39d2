"""Measured inference speed of the original, the twin and the real cascade on this machine.

The paper reports FPGA throughput; this module measures what the same models do
on the CPU or GPU that runs the workflow, and says so in every row it returns.

Timing protocol, per configuration: ``warmup`` untimed runs, then ``repeats``
timed runs of one batch of ``batch_size`` images under ``torch.inference_mode``
(with ``torch.cuda.synchronize`` around each run on CUDA); the median run time
is reported as ``latency_ms`` (per batch) and ``throughput_fps`` =
``batch_size / latency``.

The cascade run is the real thing, not a sum of parts: the twin runs on the
batch, the chosen gate's confidence (``twindnn.cascade.GATES``; the paper's max
softmax by default) picks the ``round(f * batch_size)`` least confident inputs,
those are gathered into a sub-batch, and the original runs on that sub-batch.
Gate and gather costs are therefore included. Beside it,
``ideal_cascade_fps`` = ``1 / (t_twin + f * t_original)`` with per-image times
from the twin-alone and original-alone runs, the rate if forwarding cost
nothing beyond the original's share.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import pandas as pd
import torch

from .cascade import DEFAULT_GATE, get_gate
from .device import describe_device, resolve_device

THROUGHPUT_COLUMNS = [
    "model",
    "gate",
    "forwarded_fraction",
    "forwarded_per_batch",
    "batch_size",
    "latency_ms",
    "throughput_fps",
    "ideal_cascade_fps",
    "repeats",
    "device",
    "note",
]


def _batch(images: torch.Tensor, batch_size: int) -> torch.Tensor:
    if len(images) == 0:
        raise ValueError("images is empty.")
    # Repeat the given images when there are fewer than one batch.
    reps = -(-batch_size // len(images))
    return images.repeat(reps, *([1] * (images.dim() - 1)))[:batch_size] if reps > 1 else images[:batch_size]


def _time_ms(run: Callable[[], object], warmup: int, repeats: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def cascade_step(
    original: torch.nn.Module, twin: torch.nn.Module, batch: torch.Tensor, n_forward: int, gate: str = DEFAULT_GATE
) -> torch.Tensor:
    """One real cascade pass: the twin answers, its ``n_forward`` least confident inputs go to the original.

    Confidence is ``gate``'s (a name in ``twindnn.cascade.GATES``).
    Returns the predicted classes of the whole batch.
    """
    twin_logits = twin(batch)
    predictions = twin_logits.argmax(dim=1)
    if n_forward > 0:
        # float32, not the twin's dtype: half-precision logits would tie many confidences.
        confidence = get_gate(gate).confidence_fn(twin_logits.float())
        forwarded = torch.topk(confidence, n_forward, largest=False).indices
        predictions[forwarded] = original(batch.index_select(0, forwarded)).argmax(dim=1)
    return predictions


def measure_throughput(
    original: torch.nn.Module,
    twin: torch.nn.Module,
    images: torch.Tensor,
    forwarded_fractions: Iterable[float],
    *,
    batch_size: int,
    warmup: int,
    repeats: int,
    device: str | torch.device = "cpu",
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    gate: str = DEFAULT_GATE,
) -> pd.DataFrame:
    """Time the original alone, the twin alone and the real cascade at each forwarded fraction.

    ``images`` is what the models take, a float tensor (N, C, H, W), unless
    ``preprocess`` is given: then ``images`` may be anything ``preprocess`` turns
    into that (e.g. uint8 NHWC to normalised float NCHW). Preprocessing happens
    once, before timing, and is not counted. The first ``batch_size`` images
    form the timed batch (repeated if there are fewer).

    Both modules are put in eval mode and moved to ``device`` ("auto": CUDA if
    available, else CPU).

    Returns one row per model ("original", "twin") and one per cascade fraction
    ("cascade"), columns ``THROUGHPUT_COLUMNS``. ``gate`` (a name in
    ``twindnn.cascade.GATES``) picks the forwarded inputs and is recorded on the
    cascade rows (empty for the models alone). ``forwarded_fraction`` is the
    fraction really forwarded, ``forwarded_per_batch / batch_size`` with
    ``forwarded_per_batch = round(f * batch_size)`` (NaN for the models alone);
    ``latency_ms`` is the median
    time per batch in milliseconds, ``throughput_fps`` images per second,
    ``ideal_cascade_fps`` images per second from ``1 / (t_twin + f * t_original)``.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError("need batch_size >= 1, repeats >= 1 and warmup >= 0.")
    fractions = [float(f) for f in forwarded_fractions]
    if any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"forwarded fractions must lie in [0, 1], got {fractions}.")
    get_gate(gate)  # refuse an unknown gate before any timing
    device = resolve_device(device)
    batch = preprocess(images) if preprocess is not None else images
    batch = _batch(batch, batch_size).to(device)
    original, twin = original.eval().to(device), twin.eval().to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    described = describe_device(device)
    note = f"measured on this machine ({described}), not FPGA"

    rows = []
    with torch.inference_mode():
        per_image_s = {}
        for name, model in (("original", original), ("twin", twin)):
            latency = _time_ms(lambda m=model: m(batch), warmup, repeats, sync)
            per_image_s[name] = latency / 1e3 / batch_size
            rows.append(
                {
                    "model": name,
                    "forwarded_fraction": float("nan"),
                    "forwarded_per_batch": float("nan"),
                    "latency_ms": latency,
                }
            )
        for f in fractions:
            n_forward = int(round(f * batch_size))
            latency = _time_ms(lambda k=n_forward: cascade_step(original, twin, batch, k, gate), warmup, repeats, sync)
            actual = n_forward / batch_size
            ideal = 1.0 / (per_image_s["twin"] + actual * per_image_s["original"])
            rows.append(
                {
                    "model": "cascade",
                    "gate": gate,
                    "forwarded_fraction": actual,
                    "forwarded_per_batch": n_forward,
                    "latency_ms": latency,
                    "ideal_cascade_fps": ideal,
                }
            )

    table = pd.DataFrame(rows)
    table["batch_size"] = batch_size
    table["throughput_fps"] = batch_size / (table["latency_ms"] / 1e3)
    table["repeats"] = repeats
    table["device"] = described
    table["note"] = note
    return table.reindex(columns=THROUGHPUT_COLUMNS)
