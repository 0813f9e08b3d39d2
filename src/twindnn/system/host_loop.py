"""The paper's host loop: the twin and the original accelerator running at once, work shared.

This is what the authors' ARM host program does (github.com/jeonghm9764/TwinDNN): each accelerator starts on a new
input; when the twin finishes one, its gate (the raw logit margin by default) either accepts the
answer or queues the input for the original; when the original finishes, it takes the next queued
input, or, if none waits, the next new one (``work_sharing``; ``twin_first`` leaves it idle).

The loop only needs a :class:`Port` per network: ``start(images)`` launches a batch without
blocking, ``poll()`` says whether it finished, ``result()`` returns its logits. On a board the
ports wrap the two DMA channels of the pair's FINN+ Parallel design (``hardware/board``); in the
tests they are :class:`SimulatedPort`, which answer with saved logits after a service time.
It runs on the board's Python too: numpy only, no package imports.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class Port:
    """One accelerator as the loop drives it."""

    def start(self, images: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def poll(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def result(self) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class SimulatedPort(Port):
    """An accelerator that answers with ``logits[index]`` after ``interval_s`` per image plus ``latency_s``.

    ``images`` passed to :meth:`start` are input indices (the simulation has no pixels)."""

    def __init__(self, logits: np.ndarray, interval_s: float, latency_s: float = 0.0, clock=time.perf_counter):
        self.logits, self.interval_s, self.latency_s, self.clock = np.asarray(logits), interval_s, latency_s, clock
        self._batch, self._ready_at = None, 0.0

    def start(self, images):
        if self._batch is not None:
            raise RuntimeError("simulated accelerator is busy")
        self._batch = np.asarray(images, dtype=np.int64)
        self._ready_at = self.clock() + self.interval_s * len(self._batch) + self.latency_s

    def poll(self) -> bool:
        return self._batch is not None and self.clock() >= self._ready_at

    def result(self) -> np.ndarray:
        batch, self._batch = self._batch, None
        return self.logits[batch]


def logit_margin(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 logit per row: the authors' gate (no softmax)."""
    top2 = np.partition(np.asarray(logits, dtype=np.float64), -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def run(twin: Port, original: Port, images, labels, threshold: float, *, scheduler: str = "work_sharing",
        batch: int = 1, confidence=logit_margin, twin_scale: float = 1.0, original_scale: float = 1.0,
        clock=time.perf_counter) -> dict:
    """Classify every input with both accelerators; measured throughput, accuracy and shares.

    ``images[i]`` is what a port takes for input ``i``; ``*_scale`` turn the accelerators' integer
    outputs into logits (``host_output_scale.json``); an input is forwarded when
    ``confidence(twin logits) < threshold``.
    """
    if scheduler not in ("work_sharing", "twin_first"):
        raise ValueError(f"scheduler {scheduler!r}: expected 'work_sharing' or 'twin_first'")
    labels = np.asarray(labels)
    n = len(labels)
    answer = np.full(n, -1, dtype=np.int64)
    by = np.zeros(n, dtype=np.int8)  # 1 twin, 2 original after forwarding, 3 original directly
    queue: deque[int] = deque()
    next_new, running = 0, {"twin": None, "original": None}
    start_time = clock()

    def take_new(count):
        nonlocal next_new
        idx = list(range(next_new, min(n, next_new + count)))
        next_new += len(idx)
        return idx

    while (by == 0).any():
        if running["twin"] is None and next_new < n:
            idx = take_new(batch)
            twin.start(_select(images, idx))
            running["twin"] = idx
        if running["original"] is None:
            idx = [queue.popleft() for _ in range(min(batch, len(queue)))]
            direct = False
            if not idx and scheduler == "work_sharing" and next_new < n:
                idx, direct = take_new(batch), True
            if idx:
                original.start(_select(images, idx))
                running["original"] = (idx, direct)
        if running["twin"] is not None and twin.poll():
            idx, running["twin"] = running["twin"], None
            logits = np.asarray(twin.result(), dtype=np.float64).reshape(len(idx), -1) * twin_scale
            forward = confidence(logits) < threshold
            for i, f, pred in zip(idx, forward, logits.argmax(1)):
                if f:
                    queue.append(i)
                else:
                    answer[i], by[i] = pred, 1
        if running["original"] is not None and original.poll():
            (idx, direct), running["original"] = running["original"], None
            logits = np.asarray(original.result(), dtype=np.float64).reshape(len(idx), -1) * original_scale
            answer[idx], by[idx] = logits.argmax(1), 3 if direct else 2
    seconds = clock() - start_time
    seen = by != 3
    return {"scheduler": scheduler, "inputs": n, "seconds": seconds, "measured_throughput_fps": n / seconds,
            "accuracy": float((answer == labels).mean()),
            "forwarded_fraction": float((by[seen] == 2).mean()) if seen.any() else 0.0,
            "original_direct_share": float((by == 3).mean()), "batch": batch, "threshold": float(threshold)}


def _select(images, idx):
    if isinstance(images, np.ndarray):
        return images[idx]
    return np.asarray(idx)
