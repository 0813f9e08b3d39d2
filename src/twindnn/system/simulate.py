"""Discrete-event simulation of TwinDNN's two accelerators on a stream of real inputs.

The stream is a split replayed in order: for input ``i`` the twin's gate decision
(``forward[i]``, from its saved logits and the chosen threshold) and whether the twin and the
original answer it correctly. Each network is a pipeline that accepts a new input every
``1 / rate`` seconds (its initiation interval) and finishes it ``latency`` seconds later
(``latency >= 1 / rate``; a FINN dataflow accelerator is deeply pipelined, a layer-by-layer
engine is not). Inputs are waiting from time 0 (a throughput-bound stream), and an input's
latency runs from when a network takes it to when its answer is final.

Schedulers (:data:`twindnn.system.model.SCHEDULERS` gives their closed forms):

- ``work_sharing`` (the paper's): the twin takes the next new input whenever it can; a forwarded
  input joins a queue for the original; the original takes the next queued input, **or, if the
  queue is empty, the next new input**, which it answers itself.
- ``twin_first``: the original only takes queued (forwarded) inputs.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..cascade import confidence, forwarded_mask


@dataclass(frozen=True)
class Accelerator:
    """One network's accelerator: ``rate`` inputs/s accepted, each finished ``latency_s`` after it starts."""

    rate: float
    latency_s: float | None = None

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate

    @property
    def delay_s(self) -> float:
        return max(self.latency_s or 0.0, self.interval_s)


def simulate(forward, twin_correct, original_correct, twin: Accelerator, original: Accelerator,
             scheduler: str = "work_sharing") -> dict:
    """Replay the stream; returns throughput_fps, accuracy, forwarded_fraction (of the inputs the
    twin saw), original_direct_share, latency (mean / p50 / p99, ms) and max_queue_depth."""
    if scheduler not in ("work_sharing", "twin_first"):
        raise ValueError(f"scheduler {scheduler!r}: expected 'work_sharing' or 'twin_first'")
    forward = np.asarray(forward, dtype=bool)
    twin_ok, orig_ok = np.asarray(twin_correct, dtype=bool), np.asarray(original_correct, dtype=bool)
    n = len(forward)
    if not (len(twin_ok) == len(orig_ok) == n) or n == 0:
        raise ValueError("forward, twin_correct and original_correct must be non-empty and of one length")

    start = np.full(n, np.nan)  # when a network first took the input
    done = np.full(n, np.nan)  # when its answer was final
    correct = np.zeros(n, dtype=bool)
    by_original_directly = np.zeros(n, dtype=bool)
    next_new = 0
    queue: list[int] = []
    max_depth = 0
    # events: (time, order, kind, input); kinds: "twin_free", "orig_free", "twin_done", "orig_done"
    events: list[tuple[float, int, str, int]] = [(0.0, 0, "twin_free", -1), (0.0, 1, "orig_free", -1)]
    order = 2
    orig_waiting = False  # the original has a free slot and nothing to take

    def push(t, kind, i=-1):
        nonlocal order
        heapq.heappush(events, (t, order, kind, i))
        order += 1

    while events:
        t, _, kind, i = heapq.heappop(events)
        if kind == "twin_free":
            if next_new < n:
                j, next_new = next_new, next_new + 1
                start[j] = t
                push(t + twin.delay_s, "twin_done", j)
                push(t + twin.interval_s, "twin_free")
        elif kind == "twin_done":
            if forward[i]:
                queue.append(i)
                max_depth = max(max_depth, len(queue))
                if orig_waiting:
                    orig_waiting = False
                    push(t, "orig_free")
            else:
                correct[i], done[i] = twin_ok[i], t
        elif kind == "orig_free":
            if queue:
                j = queue.pop(0)
            elif scheduler == "work_sharing" and next_new < n:
                j, next_new = next_new, next_new + 1
                start[j], by_original_directly[j] = t, True
            else:
                orig_waiting = True
                continue
            push(t + original.delay_s, "orig_done", j)
            push(t + original.interval_s, "orig_free")
        elif kind == "orig_done":
            correct[i], done[i] = orig_ok[i], t
    latency_ms = (done - start) * 1e3
    seen_by_twin = ~by_original_directly
    return {
        "scheduler": scheduler,
        "inputs": n,
        "throughput_fps": n / float(np.nanmax(done)),
        "accuracy": float(correct.mean()),
        "forwarded_fraction": float(forward[seen_by_twin].mean()) if seen_by_twin.any() else 0.0,
        "original_direct_share": float(by_original_directly.mean()),
        "mean_latency_ms": float(latency_ms.mean()),
        "p50_latency_ms": float(np.percentile(latency_ms, 50)),
        "p99_latency_ms": float(np.percentile(latency_ms, 99)),
        "max_queue_depth": int(max_depth),
    }


def forwarded_inputs(twin_logits, labels, gate: str, threshold: float) -> np.ndarray:
    """The gate's decision per input (``confidence < threshold``); the oracle gate (NaN threshold)
    forwards exactly the inputs the twin gets wrong."""
    if np.isnan(threshold):
        return np.asarray(twin_logits).argmax(1) != np.asarray(labels)
    return forwarded_mask(confidence(twin_logits, gate), threshold)


def simulate_system_rows(system, points, twin_logits: dict, original_logits: dict, min_inputs: int = 20_000):
    """Add the simulation of each fitting pair of a system table (``twindnn.hardware.colocate.system_rows``)
    on the test split, in order: ``simulated_*`` columns beside the closed forms.

    The split is replayed as often as it takes to reach ``min_inputs`` inputs: a stream of a few
    hundred images lasts about as long as a deep pipeline's latency, and would measure the
    pipeline filling rather than the throughput."""
    repeats = max(1, -(-min_inputs // len(twin_logits["test_labels"])))
    labels = np.tile(twin_logits["test_labels"], repeats)
    twin_logits = {"test_logits": np.tile(twin_logits["test_logits"], (repeats, 1)), "test_labels": labels}
    twin_ok = twin_logits["test_logits"].argmax(1) == labels
    orig_ok = np.tile(original_logits["test_logits"], (repeats, 1)).argmax(1) == labels
    thresholds = {(p["gate"], p["target_value"] if p["gate"] != "oracle" else "oracle"): p["threshold"]
                  for _, p in points.iterrows()}
    rows = []
    for _, row in system.iterrows():
        out = {}
        if bool(row["fits"]):
            key = (row["gate"], row["target_value"] if row["gate"] != "oracle" else "oracle")
            forward = forwarded_inputs(twin_logits["test_logits"], labels, row["gate"], float(thresholds[key]))
            sim = simulate(forward, twin_ok, orig_ok,
                           Accelerator(row["twin_fps"], row["twin_latency_ms"] / 1e3),
                           Accelerator(row["original_fps"], row["original_latency_ms"] / 1e3), row["scheduler"])
            out = {f"simulated_{k}": sim[k] for k in ("throughput_fps", "accuracy", "mean_latency_ms",
                                                      "p99_latency_ms", "max_queue_depth", "original_direct_share")}
            out["simulated_inputs"] = sim["inputs"]
        rows.append(out)
    return pd.concat([system.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
