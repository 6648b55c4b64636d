"""Moving nested feature structures (dicts, lists, tuples of tensors) to a device."""
from __future__ import annotations

from typing import Any

import torch


def to_device(obj: Any, device: torch.device | str) -> Any:
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu" and torch.device(device).type == "cuda":
            # From pinned memory the copy is truly asynchronous: the caller (the prefetch
            # thread) queues it and goes on; the step's kernels come after it on the stream.
            return obj.pin_memory().to(device, non_blocking=True)
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    return obj


def pick_device(setting: str = "auto") -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
