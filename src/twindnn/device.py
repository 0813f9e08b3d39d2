"""Which device a job runs on, and one line naming the hardware behind it (for every table's
provenance and every measured speed)."""

from __future__ import annotations

import os
import platform

import torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: str | torch.device = "cpu") -> str:
    """One line naming the hardware behind ``device``.

    CPU: model name, logical cores, torch intra-op threads. CUDA: the GPU name
    (and the host CPU, which feeds it).
    """
    device = resolve_device(device)
    cpu = f"{_cpu_model()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"GPU {torch.cuda.get_device_name(index)} (host CPU {cpu})"
    return f"CPU {cpu}"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else goes to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
